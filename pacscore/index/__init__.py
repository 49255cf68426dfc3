"""The LMDB index: environment and databases, the record codec, the writer, secondary indexes."""
