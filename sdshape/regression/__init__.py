"""Did it get slower, and why: ``compare`` (two results, a Mann-Whitney U test and effect floors),
``history`` (timelines across versions, their steps and causes), with confirmation runs, bisection across
releases and the detection benchmark that measures how often each verdict is right. Torch-free."""
