//! Model readers: tensors by name, dtype and shape, mapped from their files.
