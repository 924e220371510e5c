"""agomni pipeline: corpora → fetch → media → annotate → features → WebDataset shards."""
__version__ = "0.1.0"
