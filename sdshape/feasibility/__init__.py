"""Will it fit, and how fast, without the GPU: the static model (a meta-device memory trace per stage,
``static``, ``trace``), the calibrated roofline time model (``timing``, ``calibration``), offload policies
and weight formats, the card catalog, and validation against published figures with its error."""
