"""Dataset readers, one module per dataset: annotation files -> :class:`~datamodules.index.LabelIndex`.

Free of Lightning and torch: ``data summary`` imports only these, numpy and the index.
Each module defines a :class:`~datamodules.registry.DatasetReader` subclass decorated with
:func:`~datamodules.registry.register_reader`; the registry imports every module here on
first use.
"""
