//! X's Connections API (2025-09-19): `DELETE /2/connections/all` ends every streaming
//! connection of the app, including the stale one X keeps after an abrupt disconnect, which
//! otherwise refuses the next connect with 429 `TooManyConnections` until it times out.

use anyhow::Result;

use crate::auth::Auth;

/// End all of the app's streaming connections; X's answer, summarised, for the log.
pub async fn clear_all(client: &reqwest::Client, base_url: &str, auth: &Auth) -> Result<String> {
    let url = format!("{}/2/connections/all", base_url.trim_end_matches('/'));
    let body = crate::problem::call(
        "DELETE /2/connections/all",
        client
            .delete(&url)
            .header("authorization", auth.header("DELETE", &url, &[])),
    )
    .await?;
    Ok(crate::message::excerpt(body.as_bytes()))
}
