//! The quickstart's development key and the tokens it prints.
//!
//! The HS256 secret is made once and kept in the data folder, readable by
//! its owner only, so that printed tokens stay valid across restarts. The
//! tokens are written beside it for scripts: `admin.token` and
//! `user.token`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use gateway::auth::issue::{TokenSpec, hs256};

/// `iss` of quickstart tokens.
pub const ISSUER: &str = "lintas-quickstart";
/// `aud` of quickstart tokens.
pub const AUDIENCE: &str = "lintas";
/// Lifetime of the printed tokens.
const TOKEN_LIFETIME: Duration = Duration::from_secs(24 * 60 * 60);

/// Bytes of a new secret: as long as the HS256 hash.
const SECRET_LEN: usize = 32;

/// Returns the development secret, making it on first use.
pub fn secret(data_dir: &Path) -> anyhow::Result<Vec<u8>> {
    let path = data_dir.join("dev-jwt-secret");
    match std::fs::read(&path) {
        Ok(secret) if secret.len() >= SECRET_LEN => return Ok(secret),
        Ok(_) => {
            tracing::warn!(path = %path.display(), "development key too short, making a new one")
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => {
            return Err(error).with_context(|| format!("failed to read {}", path.display()));
        }
    }
    let secret: Vec<u8> = (0..SECRET_LEN).map(|_| rand::random::<u8>()).collect();
    write_private(&path, &secret)?;
    Ok(secret)
}

/// Tokens issued for the quickstart.
pub struct Tokens {
    pub admin: String,
    /// A regular user's token and that user's id, when a user exists.
    pub user: Option<(String, String)>,
    pub folder: PathBuf,
}

/// Issues an admin token and a token for `user_id`, and writes them to the
/// data folder.
pub fn issue(secret: &[u8], data_dir: &Path, user_id: Option<String>) -> anyhow::Result<Tokens> {
    let spec = |subject, admin| TokenSpec {
        issuer: ISSUER,
        audience: AUDIENCE,
        subject,
        admin,
        lifetime: TOKEN_LIFETIME,
    };
    let admin = hs256(secret, &spec("quickstart-admin", true))?;
    write_private(&data_dir.join("admin.token"), admin.as_bytes())?;
    let user = match user_id {
        Some(id) => {
            let token = hs256(secret, &spec(&id, false))?;
            write_private(&data_dir.join("user.token"), token.as_bytes())?;
            Some((token, id))
        }
        None => None,
    };
    Ok(Tokens {
        admin,
        user,
        folder: data_dir.to_owned(),
    })
}

/// Writes `contents` to a file that only its owner may read.
fn write_private(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .with_context(|| format!("failed to write {}", path.display()))?;
    file.write_all(contents)
        .with_context(|| format!("failed to write {}", path.display()))
}
