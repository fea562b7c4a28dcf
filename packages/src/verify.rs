//! The signature against the trusted keys, and every file against the
//! manifest.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{Cursor, Read};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use minisign::SignatureBox;
use sha2::{Digest, Sha256};

use crate::build::collect;
use crate::error::PackageError;
use crate::keys::{TrustedKey, key_id};
use crate::manifest::{PackageManifest, SIGNATURE_FILE};

/// Checks `signature` (the `.minisig` text, if the package has one) over
/// `manifest` against `trusted`; returns the signer's key id, or `None`
/// for an unsigned package the operator allowed.
pub(crate) fn check_signature(
    manifest: &[u8],
    signature: Option<&str>,
    trusted: &[TrustedKey],
    allow_unsigned: bool,
) -> Result<Option<String>, PackageError> {
    let Some(signature) = signature else {
        return if allow_unsigned {
            Ok(None)
        } else {
            Err(PackageError::Unsigned)
        };
    };
    let signature = parse_signature(signature)?;
    let signer = key_id(signature.keynum());
    let Some(key) = trusted
        .iter()
        .find(|k| k.key.keynum() == signature.keynum())
    else {
        return Err(PackageError::UnknownSigner { key_id: signer });
    };
    // Legacy (not prehashed) signatures are refused: outboard never makes them.
    minisign::verify(
        &key.key,
        &signature,
        Cursor::new(manifest),
        true,
        false,
        false,
    )
    .map_err(|e| PackageError::BadSignature {
        key_id: signer.clone(),
        reason: e.to_string(),
    })?;
    Ok(Some(signer))
}

/// The signature in `text`, or an error naming the file.
fn parse_signature(text: &str) -> Result<SignatureBox, PackageError> {
    SignatureBox::from_string(text).map_err(|e| {
        PackageError::Malformed(format!("{SIGNATURE_FILE}: not a minisign signature: {e}"))
    })
}

/// The key id a signature text names, if it parses.
pub(crate) fn signer_of(text: &str) -> Option<String> {
    parse_signature(text).ok().map(|s| key_id(s.keynum()))
}

/// Checks that `dir` holds exactly the manifest's files with their
/// checksums, then gives each file the manifest's mode.
pub(crate) fn check_files(manifest: &PackageManifest, dir: &Path) -> Result<(), PackageError> {
    let mut present = Vec::new();
    collect(dir, "", &mut present)?;
    let mut listed: BTreeMap<&str, &crate::FileEntry> = manifest
        .files
        .iter()
        .map(|f| (f.path.as_str(), f))
        .collect();
    for (path, _) in &present {
        let Some(entry) = listed.remove(path.as_str()) else {
            return Err(PackageError::Checksum {
                file: path.clone(),
                reason: "the file is in the package but not in its manifest".to_owned(),
            });
        };
        let file = dir.join(path);
        if sha256_of(&file)? != entry.sha256 {
            return Err(PackageError::Checksum {
                file: path.clone(),
                reason: "its SHA-256 does not match the manifest".to_owned(),
            });
        }
    }
    if let Some(missing) = listed.keys().next() {
        return Err(PackageError::Checksum {
            file: (*missing).to_owned(),
            reason: "the manifest lists it but the package does not hold it".to_owned(),
        });
    }
    for entry in &manifest.files {
        let file = dir.join(&entry.path);
        fs::set_permissions(&file, fs::Permissions::from_mode(entry.mode_bits()))
            .map_err(PackageError::io(&file))?;
    }
    open_folders(dir)
}

/// Gives `dir` and every folder under it mode 755, whatever the umask: the
/// plugin, perhaps run as another user (`sandbox.user`), must reach its
/// files. (Folders carry no mode in the manifest; unpack makes nothing but
/// files and folders.)
pub(crate) fn open_folders(dir: &Path) -> Result<(), PackageError> {
    fs::set_permissions(dir, fs::Permissions::from_mode(0o755)).map_err(PackageError::io(dir))?;
    for entry in fs::read_dir(dir).map_err(PackageError::io(dir))? {
        let entry = entry.map_err(PackageError::io(dir))?;
        if entry
            .file_type()
            .map_err(PackageError::io(entry.path()))?
            .is_dir()
        {
            open_folders(&entry.path())?;
        }
    }
    Ok(())
}

/// The SHA-256 of `path`'s content, lower-case hex.
fn sha256_of(path: &Path) -> Result<String, PackageError> {
    let mut hasher = Sha256::new();
    let mut file = File::open(path).map_err(PackageError::io(path))?;
    let mut buffer = vec![0; 64 * 1024];
    loop {
        let read = file.read(&mut buffer).map_err(PackageError::io(path))?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
    }
    Ok(hex::encode(hasher.finalize()))
}
