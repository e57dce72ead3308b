"""Examples and datasets, shared by mining, describing, training and evaluation: the one
versioned example schema (:mod:`.example`), the SQLite store of mined examples (:mod:`.store`)
and leakage-safe splits, exports and base materialisation (:mod:`.splits`)."""
