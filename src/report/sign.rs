//! Tamper evidence: a manifest of SHA-256 digests (the report's files and its inputs), an
//! Ed25519 detached signature over the manifest, and the chain of reports (each report.json
//! names the previous one's digest).
//!
//! A key file holds the 32-byte Ed25519 seed as 64 hex digits (`openssl rand -hex 32`).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub const MANIFEST_FILE: &str = "manifest.json";
pub const SIGNATURE_FILE: &str = "manifest.json.sig";
pub const REPORT_JSON: &str = "report.json";

#[derive(Debug, Serialize, Deserialize)]
pub struct Manifest {
    pub schema_version: u32,
    pub report_id: String,
    /// The signer's public key (hex); absent when unsigned.
    pub public_key: Option<String>,
    /// The report's files, by name in its directory.
    pub files: Vec<Digest256>,
    /// The inputs, by path relative to the config file's directory.
    pub inputs: Vec<Digest256>,
    pub previous_report_sha256: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Digest256 {
    pub path: String,
    pub sha256: String,
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    let text = text.trim();
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

pub fn sha256_bytes(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

pub fn sha256_file(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(sha256_bytes(&bytes))
}

/// Reads a key file: 64 hex digits, the Ed25519 seed.
pub fn read_signing_key(path: &Path) -> Result<SigningKey> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the key file {}", path.display()))?;
    let seed: [u8; 32] = unhex(&text)
        .and_then(|b| b.try_into().ok())
        .with_context(|| {
            format!(
                "{}: a key file holds 64 hex digits (a 32-byte Ed25519 seed, e.g. from `openssl rand -hex 32`)",
                path.display()
            )
        })?;
    Ok(SigningKey::from_bytes(&seed))
}

fn parse_public_key(text: &str) -> Result<VerifyingKey> {
    let bytes: [u8; 32] = unhex(text)
        .and_then(|b| b.try_into().ok())
        .context("a public key is 64 hex digits")?;
    VerifyingKey::from_bytes(&bytes).context("not an Ed25519 public key")
}

pub fn public_key_hex(key: &SigningKey) -> String {
    hex(key.verifying_key().as_bytes())
}

/// Writes `manifest.json` (and with a key `manifest.json.sig`, the signature in hex) into `dir`.
pub fn write_manifest(dir: &Path, mut manifest: Manifest, key: Option<&SigningKey>) -> Result<()> {
    manifest.public_key = key.map(public_key_hex);
    let mut text = serde_json::to_vec_pretty(&manifest)?;
    text.push(b'\n');
    let path = dir.join(MANIFEST_FILE);
    std::fs::write(&path, &text).with_context(|| format!("cannot write {}", path.display()))?;
    let signature_path = dir.join(SIGNATURE_FILE);
    match key {
        Some(key) => {
            let signature = key.sign(&text);
            std::fs::write(&signature_path, format!("{}\n", hex(&signature.to_bytes())))
                .with_context(|| format!("cannot write {}", signature_path.display()))?;
        }
        None if signature_path.exists() => std::fs::remove_file(&signature_path)?,
        None => {}
    }
    Ok(())
}

/// What `verify` found for one report.
#[derive(Debug)]
pub struct Verified {
    pub dir: PathBuf,
    pub report_sha256: String,
    pub signed_by: Option<String>,
    pub inputs_checked: usize,
}

/// Checks each report directory (oldest first when several: a chain): every file's digest,
/// the signature, the inputs when `inputs_base` is given, and that each report names the
/// previous one's digest. Fails naming the first file that does not match.
pub fn verify(
    dirs: &[PathBuf],
    pinned_key: Option<&str>,
    inputs_base: Option<&Path>,
) -> Result<Vec<Verified>> {
    let pinned = pinned_key.map(parse_public_key).transpose()?;
    let mut out: Vec<Verified> = Vec::new();
    for dir in dirs {
        let manifest_path = dir.join(MANIFEST_FILE);
        let manifest_bytes = std::fs::read(&manifest_path)
            .with_context(|| format!("cannot read {}", manifest_path.display()))?;
        let manifest: Manifest = serde_json::from_slice(&manifest_bytes)
            .with_context(|| format!("{}: not a report manifest", manifest_path.display()))?;
        let signature_path = dir.join(SIGNATURE_FILE);
        let signed_by = if signature_path.exists() {
            let text = std::fs::read_to_string(&signature_path)?;
            let signature = unhex(&text)
                .and_then(|b| <[u8; 64]>::try_from(b).ok())
                .map(|b| Signature::from_bytes(&b))
                .with_context(|| format!("{}: not a hex signature", signature_path.display()))?;
            let key = match (&pinned, &manifest.public_key) {
                (Some(key), _) => *key,
                (None, Some(text)) => parse_public_key(text)?,
                (None, None) => bail!("{}: signed, but names no key", manifest_path.display()),
            };
            key.verify(&manifest_bytes, &signature).map_err(|_| {
                anyhow::anyhow!(
                    "{}: the signature does not match (manifest.json or its signature changed, or another key)",
                    manifest_path.display()
                )
            })?;
            Some(hex(key.as_bytes()))
        } else if pinned.is_some() {
            bail!("{}: not signed", dir.display());
        } else {
            None
        };
        for file in &manifest.files {
            check_digest(&dir.join(&file.path), &file.sha256)?;
        }
        let mut inputs_checked = 0;
        if let Some(base) = inputs_base {
            for input in &manifest.inputs {
                check_digest(&base.join(&input.path), &input.sha256)?;
                inputs_checked += 1;
            }
        }
        let report_sha256 = sha256_file(&dir.join(REPORT_JSON))?;
        if let Some(previous) = out.last()
            && manifest.previous_report_sha256.as_deref() != Some(&previous.report_sha256)
        {
            bail!(
                "{}: names previous report {} but the report before it in the chain, {}, has digest {}: a report is missing or changed",
                dir.join(REPORT_JSON).display(),
                manifest.previous_report_sha256.as_deref().unwrap_or("none"),
                previous.dir.display(),
                previous.report_sha256
            );
        }
        out.push(Verified {
            dir: dir.clone(),
            report_sha256,
            signed_by,
            inputs_checked,
        });
    }
    Ok(out)
}

fn check_digest(path: &Path, expected: &str) -> Result<()> {
    let actual = sha256_file(path)?;
    if actual != expected {
        bail!(
            "{}: SHA-256 {actual} does not match the manifest's {expected} (the file changed)",
            path.display()
        );
    }
    Ok(())
}
