//! The release artifact: found next to the plan, checked against its digest before any target is
//! touched.

use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

/// An artifact ready to copy: where it is here, its size and digest.
#[derive(Debug, Clone)]
pub struct Artifact {
    pub path: PathBuf,
    pub file_name: String,
    pub size: u64,
    pub sha256: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    #[error("artifact {path} cannot be read: {reason}")]
    Unreadable { path: String, reason: String },
    #[error("artifact {path} has SHA-256 {actual}, but the plan expects {expected}")]
    Mismatch {
        path: String,
        expected: String,
        actual: String,
    },
}

/// Reads and verifies the artifact at `path` (relative paths are relative to `base`).
pub fn prepare(base: &Path, path: &str, expected: Option<&str>) -> Result<Artifact, ArtifactError> {
    let full = if Path::new(path).is_absolute() {
        PathBuf::from(path)
    } else {
        base.join(path)
    };
    let shown = full.display().to_string();
    let unreadable = |e: std::io::Error| ArtifactError::Unreadable {
        path: shown.clone(),
        reason: e.to_string(),
    };
    let meta = std::fs::metadata(&full).map_err(unreadable)?;
    if !meta.is_file() {
        return Err(ArtifactError::Unreadable {
            path: shown,
            reason: "not a regular file".into(),
        });
    }
    let sha256 = sha256_file(&full).map_err(unreadable)?;
    if let Some(expected) = expected
        && !expected.eq_ignore_ascii_case(&sha256)
    {
        return Err(ArtifactError::Mismatch {
            path: shown,
            expected: expected.to_string(),
            actual: sha256,
        });
    }
    let file_name = full
        .file_name()
        .map_or_else(|| "artifact".into(), |n| n.to_string_lossy().into_owned());
    Ok(Artifact {
        path: full,
        file_name,
        size: meta.len(),
        sha256,
    })
}
