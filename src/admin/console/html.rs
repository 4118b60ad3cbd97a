//! The console's HTML: the whole page (head, the locality chooser, the refreshing script) and
//! the fragment the script fetches every few seconds to replace the page's main part — config
//! status and diagnostics, clients with per-type status and NACK reasons, services with their
//! localities, shares, capacity and load, and a traffic picture each (svg.rs). Everything that
//! comes from a config or a client is escaped here. Must not gather data.

use std::fmt::Write;

use super::data::{ConsoleData, Place, ServiceRow};
use super::svg::{place_label, traffic_picture};
use crate::publish::status::LoadOutcome;
use crate::xds::server::clients::ClientStatus;

/// How often the page fetches a fresh fragment, in milliseconds.
const REFRESH_MS: u32 = 2000;

/// Text made safe for HTML element content and quoted attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// The whole page.
pub fn page(data: &ConsoleData) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width\">\
         <link rel=\"icon\" href=\"data:,\"><title>Switchyard console</title>\
         <style>{STYLE}</style></head><body>\
         <header><h1>Switchyard</h1><label>Traffic from \
         <select id=\"from\">{options}</select></label>\
         <span id=\"updated\">rendered by the server</span></header>\
         <main id=\"console\">{fragment}</main>\
         <script>const REFRESH_MS = {REFRESH_MS};\n{SCRIPT}</script></body></html>\n",
        options = place_options(data),
        fragment = fragment(data),
    )
}

/// The main part, which the script replaces on each refresh.
pub fn fragment(data: &ConsoleData) -> String {
    let mut html = String::new();
    let _ = write!(
        html,
        "<template id=\"place-options\">{}</template>",
        place_options(data)
    );
    html.push_str(&config_section(data));
    html.push_str(&clients_section(&data.clients));
    html.push_str(&services_section(&data.services, &data.from));
    html
}

fn place_options(data: &ConsoleData) -> String {
    data.places
        .iter()
        .map(|place| {
            let selected = if *place == data.from { " selected" } else { "" };
            format!(
                "<option value=\"{}\"{selected}>{}</option>",
                escape(&place.key()),
                escape(&place_label(place))
            )
        })
        .collect()
}

fn config_section(data: &ConsoleData) -> String {
    let status = &data.status;
    let serving = if status.serving {
        format!(
            "serving version <code>{}</code>",
            escape(&status.serving_version)
        )
    } else {
        "<span class=\"bad\">nothing served yet</span>".to_string()
    };
    let (outcome, class) = match status.last_load {
        LoadOutcome::None => ("not read yet", "stale"),
        LoadOutcome::Accepted => ("accepted", "good"),
        LoadOutcome::Rejected => ("rejected; the last good config keeps serving", "bad"),
        LoadOutcome::PendingRemoval => {
            ("held back: it would withdraw most of what is served", "bad")
        }
    };
    let diagnostics: String = status
        .diagnostics
        .errors()
        .map(|d| (d, "bad"))
        .chain(status.diagnostics.warnings().map(|d| (d, "stale")))
        .map(|(diagnostic, class)| {
            format!(
                "<li class=\"{class}\">{}</li>",
                escape(&diagnostic.to_string())
            )
        })
        .collect();
    let diagnostics = if diagnostics.is_empty() {
        "<p>No diagnostics.</p>".to_string()
    } else {
        format!("<ul class=\"diagnostics\">{diagnostics}</ul>")
    };
    format!(
        "<section id=\"config\"><h2>Config</h2><p><code>{}</code>: {serving}; latest edit \
         <span class=\"{class}\">{outcome}</span> ({} accepted, {} rejected)</p>{diagnostics}\
         </section>",
        escape(&status.config),
        status.accepted_loads,
        status.rejected_loads,
    )
}

fn clients_section(clients: &[ClientStatus]) -> String {
    if clients.is_empty() {
        return "<section id=\"clients\"><h2>Clients</h2><p>No client connected.</p></section>"
            .to_string();
    }
    let rows: String = clients.iter().map(client_row).collect();
    format!(
        "<section id=\"clients\"><h2>Clients ({})</h2><table><thead><tr><th>Node</th>\
         <th>Locality</th><th>Kind</th><th>Protocol</th><th>Types</th><th>NACKs</th></tr>\
         </thead><tbody>{rows}</tbody></table></section>",
        clients.len()
    )
}

fn client_row(client: &ClientStatus) -> String {
    let place = client
        .locality
        .as_ref()
        .map(|l| Place {
            region: l.region.clone(),
            zone: l.zone.clone(),
        })
        .unwrap_or_default();
    let types: String = client
        .types
        .iter()
        .map(|(name, status)| {
            let word = sync_word(status.status);
            format!(
                "<span class=\"type {}\">{} {word}</span> ",
                word.to_ascii_lowercase(),
                escape(name)
            )
        })
        .collect();
    let nacks: String = client
        .types
        .iter()
        .filter_map(|(name, status)| Some((name, status.last_nack.as_ref()?)))
        .map(|(name, nack)| {
            format!(
                "<div class=\"bad\">{} version {}: {}</div>",
                escape(name),
                escape(&nack.version),
                escape(&nack.error_detail)
            )
        })
        .collect();
    format!(
        "<tr><td><code>{}</code><br><small>{}</small></td><td>{}</td><td>{}</td>\
         <td>{} ({})</td><td>{types}</td><td>{nacks}</td></tr>",
        escape(&client.node_id),
        escape(&client.cluster),
        escape(&place_label(&place)),
        escape(&client.kind),
        escape(&client.protocol),
        escape(&client.service),
    )
}

/// The status as the admin API spells it.
fn sync_word(status: crate::xds::server::clients::SyncStatus) -> &'static str {
    use crate::xds::server::clients::SyncStatus;
    match status {
        SyncStatus::NotSent => "NOT_SENT",
        SyncStatus::Stale => "STALE",
        SyncStatus::Synced => "SYNCED",
        SyncStatus::Nacked => "NACKED",
    }
}

fn services_section(services: &[ServiceRow], from: &Place) -> String {
    let body: String = if services.is_empty() {
        "<p>No service served.</p>".to_string()
    } else {
        services.iter().map(|s| service_block(s, from)).collect()
    };
    format!(
        "<section id=\"services\"><h2>Services, as a client in {} is served</h2>{body}</section>",
        escape(&place_label(from))
    )
}

fn service_block(service: &ServiceRow, from: &Place) -> String {
    let unit = service.unit.as_deref().unwrap_or("");
    let figure = |value: Option<f64>| {
        value.map_or_else(|| "—".to_string(), |v| format!("{v:.1} {}", escape(unit)))
    };
    let rows: String = service
        .localities
        .iter()
        .map(|row| {
            let traffic = &row.traffic;
            let place = Place {
                region: traffic.region.clone(),
                zone: traffic.zone.clone(),
            };
            let health_class = if traffic.healthy == traffic.total {
                "good"
            } else if traffic.healthy == 0 {
                "bad"
            } else {
                "stale"
            };
            format!(
                "<tr><td>{}</td><td>{}</td><td class=\"{health_class}\">{}/{} healthy{}</td>\
                 <td>{}</td><td>{:.1}%</td><td>{}</td><td>{}</td></tr>",
                escape(&place_label(&place)),
                traffic.priority,
                traffic.healthy,
                traffic.total,
                traffic
                    .unhealthy
                    .iter()
                    .map(|u| format!("<br><small>{}</small>", escape(u)))
                    .collect::<String>(),
                traffic.weight.map_or("—".to_string(), |w| w.to_string()),
                traffic.share * 100.0,
                figure(row.capacity),
                figure(row.load),
            )
        })
        .collect();
    format!(
        "<article class=\"service\"><h3>{}</h3>{}<table><thead><tr><th>Backend locality</th>\
         <th>Priority</th><th>Endpoints</th><th>Weight</th><th>Share</th><th>Capacity</th>\
         <th>Load</th></tr></thead><tbody>{rows}</tbody></table></article>",
        escape(&service.name),
        traffic_picture(service, from)
    )
}

const STYLE: &str = "body{font:14px system-ui,sans-serif;margin:0;color:#222}\
header{display:flex;gap:2em;align-items:center;padding:.5em 1em;background:#1d3557;color:#fff}\
header h1{font-size:1.2em;margin:0}#updated{font-size:.85em;opacity:.8}\
main{padding:0 1em 2em}table{border-collapse:collapse;margin:.5em 0}\
th,td{border:1px solid #ccc;padding:.25em .6em;text-align:left;vertical-align:top}\
th{background:#f1f3f5}.good{color:#2b8a3e}.bad{color:#c92a2a}.stale{color:#e67700}\
.type{display:inline-block;border:1px solid #ccc;border-radius:3px;padding:0 .3em;margin:1px;font-size:.85em}\
.type.synced{border-color:#2b8a3e}.type.nacked{border-color:#c92a2a;color:#c92a2a}\
.diagnostics li{font-family:monospace;white-space:pre-wrap}\
svg.traffic text{font-size:12px;fill:#222}svg.traffic rect.client{fill:#dbe4ff;stroke:#1d3557}\
svg.traffic line.flow{stroke:#1971c2}svg.traffic line.idle{stroke:#adb5bd;stroke-dasharray:4 3}\
svg.traffic text.share{font-weight:bold;fill:#1971c2}";

/// Fetches the fragment for the chosen locality and swaps it in; keeps the chooser's options
/// in step with the fragment's without losing the choice.
const SCRIPT: &str = r#"const main = document.getElementById('console');
const chooser = document.getElementById('from');
const updated = document.getElementById('updated');
function syncOptions() {
  const fresh = document.getElementById('place-options');
  if (fresh && fresh.innerHTML !== chooser.dataset.options) {
    const chosen = chooser.value;
    chooser.innerHTML = fresh.innerHTML;
    chooser.dataset.options = fresh.innerHTML;
    chooser.value = chosen;
  }
}
async function refresh() {
  try {
    const answer = await fetch('/console/main?from=' + encodeURIComponent(chooser.value), {cache: 'no-store'});
    if (!answer.ok) {
      updated.textContent = 'refresh answered ' + answer.status;
      return;
    }
    main.innerHTML = await answer.text();
    syncOptions();
    updated.textContent = 'updated ' + new Date().toLocaleTimeString();
  } catch (error) {
    updated.textContent = 'the admin port did not answer';
  }
}
syncOptions();
chooser.addEventListener('change', refresh);
setInterval(refresh, REFRESH_MS);"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_and_quotes_are_escaped() {
        assert_eq!(
            escape("<script>alert(\"x\")</script> & 'y'"),
            "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;y&#39;"
        );
    }
}
