//! Data sources, one folder each (schema, typed model, read).

pub mod policy_document;
