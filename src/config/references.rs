//! Cloud-style references: a bare name (`web`), a relative link
//! (`global/backendServices/web`, `zones/us-central1-a/networkEndpointGroups/neg-a`) or a full
//! `https://.../projects/p/...` link all name the same resource.

use crate::model::{Diagnostics, Loc, Ref};

/// Resolves `text` to a plain name, checking that a link points at one of `collections`.
pub fn parse(
    text: &str,
    collections: &[&str],
    loc: &Loc,
    path: &str,
    diagnostics: &mut Diagnostics,
) -> Option<Ref> {
    let trimmed = text.trim().trim_end_matches('/');
    let segments: Vec<&str> = trimmed.split('/').filter(|s| !s.is_empty()).collect();
    let name = match segments.as_slice() {
        [] => {
            diagnostics.error(loc, path, "the reference is empty");
            return None;
        }
        [name] => *name,
        [.., collection, name] => {
            if !collections.contains(collection) {
                diagnostics.error(
                    loc,
                    path,
                    format!(
                        "`{text}` links to a resource in {collection}, but this field takes {}",
                        collections.join(" or ")
                    ),
                );
                return None;
            }
            *name
        }
    };
    Some(Ref {
        name: name.to_string(),
        loc: loc.clone(),
        path: path.to_string(),
    })
}

/// The region a zone belongs to: `us-central1-a` → `us-central1`, `us-east-1a` → `us-east-1`.
pub fn region_of_zone(zone: &str) -> String {
    let bytes = zone.as_bytes();
    if let [.., digit, letter] = bytes {
        if digit.is_ascii_digit() && letter.is_ascii_alphabetic() {
            return zone[..zone.len() - 1].to_string();
        }
    }
    match zone.rsplit_once('-') {
        Some((region, _)) => region.to_string(),
        None => zone.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(text: &str) -> (Option<String>, Diagnostics) {
        let mut diagnostics = Diagnostics::default();
        let loc = Loc::new("f.yaml", 3);
        let found = parse(text, &["backendServices"], &loc, "p", &mut diagnostics);
        (found.map(|r| r.name), diagnostics)
    }

    #[test]
    fn every_link_form_names_the_resource() {
        for text in [
            "web",
            "global/backendServices/web",
            "regions/us-central1/backendServices/web",
            "projects/p/global/backendServices/web",
            "https://www.googleapis.com/compute/v1/projects/p/global/backendServices/web",
        ] {
            assert_eq!(resolve(text).0.as_deref(), Some("web"), "{text}");
        }
    }

    #[test]
    fn a_link_to_the_wrong_collection_is_an_error() {
        let (found, diagnostics) = resolve("global/urlMaps/web");
        assert_eq!(found, None);
        assert_eq!(
            diagnostics.items[0].message,
            "`global/urlMaps/web` links to a resource in urlMaps, but this field takes backendServices"
        );
    }

    #[test]
    fn zones_imply_regions() {
        assert_eq!(region_of_zone("us-central1-a"), "us-central1");
        assert_eq!(region_of_zone("europe-west4-b"), "europe-west4");
        assert_eq!(region_of_zone("us-east-1a"), "us-east-1");
    }
}
