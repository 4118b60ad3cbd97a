//! The console on the admin port's `/`: one server-rendered page (no JavaScript build step)
//! showing connected clients, the config's status and diagnostics, and per service its backend
//! localities with health, capacity, load and share, and a picture of where a chosen client
//! locality's traffic goes. A small inline script fetches `/console/main` every few seconds
//! and swaps it in. `data` gathers, `traffic` works out shares, `html` and `svg` render; this
//! module only routes. Read-only, like the rest of the admin port.

mod data;
mod html;
mod svg;
mod traffic;

use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{Html, IntoResponse};

use super::AdminState;
use data::Place;

#[derive(serde::Deserialize)]
pub(super) struct ConsoleQuery {
    /// `region/zone` of the client locality to see traffic from.
    from: Option<String>,
}

/// `/`: the whole page.
pub(super) async fn page(
    State(state): State<AdminState>,
    Query(query): Query<ConsoleQuery>,
) -> impl IntoResponse {
    let data = data::gather(&state, query.from.as_deref().map(Place::from_key));
    no_store(html::page(&data))
}

/// `/console/main?from=region/zone`: the part of the page the script refreshes.
pub(super) async fn main_part(
    State(state): State<AdminState>,
    Query(query): Query<ConsoleQuery>,
) -> impl IntoResponse {
    let data = data::gather(&state, query.from.as_deref().map(Place::from_key));
    no_store(html::fragment(&data))
}

fn no_store(body: String) -> impl IntoResponse {
    ([(header::CACHE_CONTROL, "no-store")], Html(body))
}
