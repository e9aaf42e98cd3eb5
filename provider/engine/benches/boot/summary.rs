//! The figures as JSON, for the evaluation (`scripts/evaluate/`), which renders its tables from
//! them: written to the file `SDSEC_BENCH_JSON` names, when it is set. The file is rewritten
//! after every part, so that a part that fails (the benchmark panics) keeps those before it.
//! Times are every sample in ms (the reader takes medians), sizes in bytes, memory in MiB.

use std::path::PathBuf;

use serde_json::{Map, Value};

#[derive(Debug, Default)]
pub struct Summary {
    path: Option<PathBuf>,
    figures: Map<String, Value>,
}

impl Summary {
    pub fn from_env() -> Self {
        let path = std::env::var_os("SDSEC_BENCH_JSON").filter(|p| !p.is_empty()).map(PathBuf::from);
        let mut figures = Map::new();
        figures.insert("bench".into(), "boot".into());
        Summary { path, figures }
    }

    pub fn set(&mut self, key: &str, value: Value) {
        self.figures.insert(key.into(), value);
        self.write();
    }

    /// Appends to the list `key`.
    pub fn push(&mut self, key: &str, value: Value) {
        let list = self.figures.entry(key).or_insert_with(|| Value::Array(Vec::new()));
        if let Value::Array(items) = list {
            items.push(value);
        }
        self.write();
    }

    /// Through a temporary file and a rename: the reader never sees half a document.
    fn write(&self) {
        let Some(path) = &self.path else { return };
        let tmp = path.with_extension("tmp");
        let text = serde_json::to_string_pretty(&self.figures).unwrap();
        std::fs::write(&tmp, text + "\n").unwrap_or_else(|e| panic!("cannot write {}: {e}", tmp.display()));
        std::fs::rename(&tmp, path).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    }
}
