//! Where history is stored.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::ConfigError;

#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Store")]
pub struct StoreConfig {
    /// SQLite database file for message history (created if missing); used when DATABASE_URL is
    /// not set.
    #[arg(long, env = "DB_PATH", default_value = "chatterbox.db")]
    pub db_path: PathBuf,

    /// Store URL; overrides DB_PATH. The scheme picks the backend: `sqlite:PATH` or
    /// `postgres://user:password@host:port/database` (a single node until multi-node support).
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: Option<String>,

    /// SQLite: how long a write waits for a lock held by another process before it fails and is
    /// retried.
    #[arg(long, env = "SQLITE_BUSY_TIMEOUT_MS", default_value_t = 5000)]
    pub sqlite_busy_timeout_ms: u64,
}

impl StoreConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        Ok(())
    }

    /// The one store URL: DATABASE_URL when set, else the SQLite file at DB_PATH.
    pub fn url(&self) -> String {
        match &self.database_url {
            Some(url) => url.clone(),
            None => {
                // The SQLite URL's path is percent-decoded, and `?` starts its options.
                let path = self.db_path.display().to_string();
                let path = path
                    .replace('%', "%25")
                    .replace('?', "%3F")
                    .replace('#', "%23");
                format!("sqlite://{path}")
            }
        }
    }

    /// The store URL without its password, for logs.
    pub fn url_for_logs(&self) -> String {
        redact_password(&self.url())
    }

    pub fn sqlite_busy_timeout(&self) -> Duration {
        Duration::from_millis(self.sqlite_busy_timeout_ms)
    }
}

/// `scheme://user:secret@host/…` → `scheme://user:***@host/…`; anything else unchanged.
fn redact_password(url: &str) -> String {
    let Some(start) = url.find("://").map(|i| i + 3) else {
        return url.to_string();
    };
    let authority_end = url[start..].find('/').map_or(url.len(), |i| start + i);
    let Some(at) = url[start..authority_end].rfind('@').map(|i| start + i) else {
        return url.to_string();
    };
    match url[start..at].find(':').map(|i| start + i) {
        Some(colon) => format!("{}:***{}", &url[..colon], &url[at..]),
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::redact_password;

    #[test]
    fn passwords_never_reach_the_logs() {
        assert_eq!(
            redact_password("postgres://chat:s3cr@t@db:5432/chat?sslmode=require"),
            "postgres://chat:***@db:5432/chat?sslmode=require"
        );
        assert_eq!(
            redact_password("postgres://chat@db/chat"),
            "postgres://chat@db/chat"
        );
        assert_eq!(
            redact_password("sqlite:///tmp/a@b:c.db"),
            "sqlite:///tmp/a@b:c.db"
        );
    }
}
