"""``python -m clip_ref.zeroshot``: zero-shot evaluation from the command line (see :func:`clip_ref.evaluate.main`)."""

from clip_ref.evaluate import main

main()
