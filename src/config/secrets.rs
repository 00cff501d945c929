//! Secret files (`client_secret_file`, `webhook_secret_file`), read only by
//! the commands that use them: `serve`, and CLI commands that call a
//! provider. `check-config`, `credentials list`, `client-key` and `migrate`
//! never need them, and on an installed system a root shell often cannot see
//! them where the service does (systemd copies them into
//! `$CREDENTIALS_DIRECTORY` for the service alone).
//!
//! A relative name is looked up where systemd itself looks for credentials:
//! `$CREDENTIALS_DIRECTORY` (the service's own copies), then `/etc/credstore`,
//! `/run/credstore`, `/usr/lib/credstore`; the working directory comes last,
//! for a development checkout.

use std::path::{Path, PathBuf};

use secrecy::SecretString;

use super::Config;

/// systemd's search path for `LoadCredential=NAME` with a bare name.
pub const CREDSTORE_DIRS: [&str; 3] = ["/etc/credstore", "/run/credstore", "/usr/lib/credstore"];

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error(
        "{key}: no file {name:?} in {}; create it (e.g. /etc/credstore/{name}, mode 0600), or under systemd \
         add `LoadCredential={name}` to the unit (systemctl edit tokend)",
        tried.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
    )]
    NotFound {
        key: String,
        name: String,
        tried: Vec<PathBuf>,
    },
    #[error("{key}: cannot read {path}: {source}")]
    Read {
        key: String,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{key}: {path} is empty; write the secret into it (a trailing newline is ignored)")]
    Empty { key: String, path: PathBuf },
}

/// Where secret files are looked for; tests give their own directories.
#[derive(Debug, Clone)]
pub struct SecretSearch {
    pub credentials_directory: Option<PathBuf>,
    pub credstores: Vec<PathBuf>,
}

impl SecretSearch {
    /// This process's: `$CREDENTIALS_DIRECTORY` and systemd's credential stores.
    pub fn from_env() -> Self {
        SecretSearch {
            credentials_directory: std::env::var_os("CREDENTIALS_DIRECTORY").map(PathBuf::from),
            credstores: CREDSTORE_DIRS.iter().map(PathBuf::from).collect(),
        }
    }

    /// The places a relative `name` may be, in order.
    fn candidates(&self, name: &Path) -> Vec<PathBuf> {
        let mut out: Vec<PathBuf> = self
            .credentials_directory
            .iter()
            .chain(&self.credstores)
            .map(|dir| dir.join(name))
            .collect();
        out.push(name.to_path_buf());
        out
    }

    /// The file `path` names: itself when absolute, else the first candidate that exists.
    pub fn resolve(&self, key: &str, path: &Path) -> Result<PathBuf, SecretError> {
        if path.is_absolute() {
            return Ok(path.to_path_buf());
        }
        let tried = self.candidates(path);
        // `exists` is false for a file we may not stat (a root-only credstore
        // seen by the service user): reported below with every place tried.
        match tried.iter().find(|p| p.exists()) {
            Some(found) => Ok(found.clone()),
            None => Err(SecretError::NotFound {
                key: key.to_owned(),
                name: path.display().to_string(),
                tried,
            }),
        }
    }

    /// Reads the secret `path` names. A trailing newline is not part of it;
    /// an empty file is refused (a provider would answer `invalid_client`
    /// much later, far from the cause).
    pub fn read(&self, key: &str, path: &Path) -> Result<SecretString, SecretError> {
        let path = self.resolve(key, path)?;
        let text = zeroize::Zeroizing::new(std::fs::read_to_string(&path).map_err(|source| {
            SecretError::Read {
                key: key.to_owned(),
                path: path.clone(),
                source,
            }
        })?);
        let secret = text.trim_end_matches(['\r', '\n']);
        if secret.trim().is_empty() {
            return Err(SecretError::Empty {
                key: key.to_owned(),
                path,
            });
        }
        Ok(SecretString::from(secret.to_owned()))
    }
}

impl Config {
    /// Every `*_secret_file` key set, with its value: `(key, path)`.
    fn secret_files(&self) -> Vec<(String, PathBuf)> {
        let mut out: Vec<(String, PathBuf)> = self
            .providers
            .iter()
            .filter_map(|(name, p)| {
                let path = p.client_secret_file.clone()?;
                Some((format!("providers.{name}.client_secret_file"), path))
            })
            .collect();
        if let Some(path) = &self.notify.webhook_secret_file {
            out.push(("notify.webhook_secret_file".into(), path.clone()));
        }
        out
    }

    /// Replaces each `*_secret_file` by the secret it holds (`serve`, and CLI
    /// commands that call a provider). A secret already read stays.
    pub fn read_secrets(&mut self) -> Result<(), SecretError> {
        self.read_secrets_with(&SecretSearch::from_env())
    }

    /// [`Config::read_secrets`] with the search path given.
    pub fn read_secrets_with(&mut self, search: &SecretSearch) -> Result<(), SecretError> {
        for (name, provider) in &mut self.providers {
            if let (None, Some(path)) = (&provider.client_secret, &provider.client_secret_file) {
                let key = format!("providers.{name}.client_secret_file");
                provider.client_secret = Some(search.read(&key, path)?);
            }
        }
        if let (None, Some(path)) = (
            &self.notify.webhook_secret,
            &self.notify.webhook_secret_file,
        ) {
            self.notify.webhook_secret = Some(search.read("notify.webhook_secret_file", path)?);
        }
        Ok(())
    }

    /// `check-config`'s look at the secret files, as this process sees
    /// them: one line each, where it was found or why not. Not an error:
    /// the service may see files a shell does not (`$CREDENTIALS_DIRECTORY`).
    pub fn secret_file_report(&self, search: &SecretSearch) -> Vec<String> {
        self.secret_files()
            .into_iter()
            .map(|(key, path)| match search.read(&key, &path) {
                Ok(_) => format!(
                    "{key}: found {}",
                    search
                        .resolve(&key, &path)
                        .map(|p| p.display().to_string())
                        .unwrap_or_default()
                ),
                Err(e) => format!("warning: {e}"),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    fn search(creds: Option<&Path>, store: &Path) -> SecretSearch {
        SecretSearch {
            credentials_directory: creds.map(Path::to_path_buf),
            credstores: vec![store.to_path_buf()],
        }
    }

    #[test]
    fn bare_names_are_found_in_credentials_directory_then_credstore() {
        let creds = tempfile::tempdir().unwrap();
        let store = tempfile::tempdir().unwrap();
        std::fs::write(store.path().join("s"), "from-store\n").unwrap();
        let s = search(Some(creds.path()), store.path());
        let got = s.read("k", Path::new("s")).unwrap();
        assert_eq!(got.expose_secret(), "from-store");
        std::fs::write(creds.path().join("s"), "from-creds").unwrap();
        let got = s.read("k", Path::new("s")).unwrap();
        assert_eq!(got.expose_secret(), "from-creds", "the service's copy wins");
    }

    #[test]
    fn a_missing_secret_names_the_key_every_place_and_what_to_do() {
        let creds = tempfile::tempdir().unwrap();
        let store = tempfile::tempdir().unwrap();
        let s = search(Some(creds.path()), store.path());
        let err = s
            .read("providers.c.client_secret_file", Path::new("nope"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("providers.c.client_secret_file"), "{err}");
        assert!(err.contains(&creds.path().display().to_string()), "{err}");
        assert!(err.contains(&store.path().display().to_string()), "{err}");
        assert!(err.contains("LoadCredential=nope"), "{err}");
    }

    #[test]
    fn an_empty_secret_file_is_refused() {
        let store = tempfile::tempdir().unwrap();
        std::fs::write(store.path().join("s"), "\n").unwrap();
        let err = search(None, store.path())
            .read("notify.webhook_secret_file", Path::new("s"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("notify.webhook_secret_file") && err.contains("is empty"),
            "{err}"
        );
    }
}
