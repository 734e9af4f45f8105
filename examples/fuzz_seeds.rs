//! Writes the codec fuzz targets' seeds (valid stored states, see `driftd::fuzz::codec_seeds`)
//! under a folder, `fuzz/seeds` by default: `cargo run --example fuzz_seeds`.

fn main() -> std::io::Result<()> {
    let root = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "fuzz/seeds".into());
    for (target, name, bytes) in driftd::fuzz::codec_seeds() {
        let dir = std::path::Path::new(&root).join(target);
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join(&name), bytes)?;
        println!("{target}/{name}");
    }
    Ok(())
}
