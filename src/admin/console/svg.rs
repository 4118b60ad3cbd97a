//! The console's picture of one service: the chosen client locality on the left, the
//! service's backend localities on the right, one line to each whose width and label say the
//! share of the client's requests it receives (grey and dashed when it receives none).
//! Inline SVG text, every name escaped; must not gather data.

use std::fmt::Write;

use super::data::{Place, ServiceRow};
use super::html::escape;

const ROW_HEIGHT: usize = 34;
const WIDTH: usize = 820;
const LEFT_BOX: (usize, usize) = (10, 170);
const RIGHT_X: usize = 400;

/// The SVG of where `service`'s traffic from `from` goes.
pub fn traffic_picture(service: &ServiceRow, from: &Place) -> String {
    let rows = service.localities.len().max(1);
    let height = rows * ROW_HEIGHT + 10;
    let client_y = height / 2;
    let mut svg = String::new();
    let _ = write!(
        svg,
        "<svg class=\"traffic\" role=\"img\" width=\"{WIDTH}\" height=\"{height}\" \
         viewBox=\"0 0 {WIDTH} {height}\" aria-label=\"traffic of {} from {}\">",
        escape(&service.name),
        escape(&place_label(from))
    );
    let (left, box_width) = LEFT_BOX;
    let _ = write!(
        svg,
        "<rect x=\"{left}\" y=\"{}\" width=\"{box_width}\" height=\"24\" rx=\"4\" class=\"client\"/>\
         <text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
        client_y - 12,
        left + box_width / 2,
        client_y + 4,
        escape(&place_label(from))
    );
    if service.localities.is_empty() {
        let _ = write!(
            svg,
            "<text x=\"{RIGHT_X}\" y=\"{}\">no endpoints</text>",
            client_y + 4
        );
    }
    for (index, row) in service.localities.iter().enumerate() {
        let y = index * ROW_HEIGHT + ROW_HEIGHT / 2 + 5;
        let share = row.traffic.share;
        let class = if share > 0.0 { "flow" } else { "idle" };
        let width = 1.0 + 10.0 * share;
        let percent = format!("{:.0}%", share * 100.0);
        let place = Place {
            region: row.traffic.region.clone(),
            zone: row.traffic.zone.clone(),
        };
        let _ = write!(
            svg,
            "<line x1=\"{}\" y1=\"{client_y}\" x2=\"{RIGHT_X}\" y2=\"{y}\" class=\"{class}\" \
             stroke-width=\"{width:.1}\"><title>{percent} to {}</title></line>\
             <text x=\"{}\" y=\"{}\" class=\"share\">{percent}</text>\
             <text x=\"{}\" y=\"{}\">{} (p{}, {}/{} healthy)</text>",
            left + box_width,
            escape(&place_label(&place)),
            RIGHT_X - 44,
            y - 4,
            RIGHT_X + 6,
            y + 4,
            escape(&place_label(&place)),
            row.traffic.priority,
            row.traffic.healthy,
            row.traffic.total,
        );
    }
    svg.push_str("</svg>");
    svg
}

/// `us-central1 / us-central1-a`, or `no locality`.
pub fn place_label(place: &Place) -> String {
    match (place.region.is_empty(), place.zone.is_empty()) {
        (true, true) => "no locality".to_string(),
        (false, true) => place.region.clone(),
        (true, false) => place.zone.clone(),
        (false, false) => format!("{} / {}", place.region, place.zone),
    }
}
