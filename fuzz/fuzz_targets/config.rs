#![no_main]
//! `driftd run` config files, loaded from a file as the CLI does (paths in them are relative
//! to its folder).

use std::sync::LazyLock;

use driftd::config::Config;
use libfuzzer_sys::fuzz_target;

static DIR: LazyLock<tempfile::TempDir> = LazyLock::new(|| tempfile::tempdir().unwrap());

fuzz_target!(|data: &[u8]| {
    let path = DIR.path().join("driftd.toml");
    std::fs::write(&path, data).unwrap();
    let _ = Config::load(&path);
});
