"""Dataset readers (one file per dataset), the label index, the base datamodule and the
synthetic-data writers."""
