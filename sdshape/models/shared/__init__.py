"""Components several families share: the text encoders and VAEs, as published configs. They sit below the
families' zoos and the zoo that gathers them (``sdshape.models.zoo``), so no zoo imports another's package."""
