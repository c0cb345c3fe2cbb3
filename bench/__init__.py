"""meshreg benchmark suite: ``python -m bench`` (or ``bin/meshreg-bench``) runs it all."""
