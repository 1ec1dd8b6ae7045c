//! A fresh PostgreSQL database per test, on the server `DATABASE_URL` names (`.ci/run` starts a
//! throwaway one): tests share the server but never a database, so they run in parallel and a
//! failed run leaves nothing another test reads. Without `DATABASE_URL` a test says SKIP.

use sqlx::{Connection, PgConnection};

/// Creates an empty database for `test` and returns its URL, or `None` (after printing SKIP)
/// when `DATABASE_URL` is not a PostgreSQL URL.
pub async fn fresh_database(test: &str) -> Option<String> {
    let admin = std::env::var("DATABASE_URL")
        .ok()
        .filter(|url| url.starts_with("postgres://") || url.starts_with("postgresql://"));
    let Some(admin) = admin else {
        super::skip(test, "DATABASE_URL is not a postgres:// URL (see .ci/run)");
        return None;
    };
    let mut suffix = [0u8; 6];
    getrandom::fill(&mut suffix).expect("randomness");
    let name = format!(
        "chatterbox_{}_{}",
        test.chars().take(30).collect::<String>(),
        suffix
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    );
    let mut conn = PgConnection::connect(&admin)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to DATABASE_URL {admin}: {e}"));
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .expect("CREATE DATABASE");
    conn.close().await.ok();
    Some(with_database(&admin, &name))
}

/// `admin` with its database (the URL path) replaced by `name`, query string kept.
fn with_database(admin: &str, name: &str) -> String {
    let (base, query) = admin.split_once('?').unwrap_or((admin, ""));
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let path_start = base[authority_start..]
        .find('/')
        .map_or(base.len(), |i| authority_start + i);
    let query = if query.is_empty() {
        String::new()
    } else {
        format!("?{query}")
    };
    format!("{}/{name}{query}", &base[..path_start])
}

/// Opens a direct connection to `url`, for checking what the server stored.
pub async fn connect(url: &str) -> PgConnection {
    PgConnection::connect(url)
        .await
        .expect("connect to the test database")
}
