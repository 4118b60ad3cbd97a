//! URI templates as Envoy's uri_template extensions read them: a match template
//! (`/users/{id}/**`, `/img/*.png`) becomes an anchored regex with a named group per variable,
//! and a rewrite template (`/u/{id}`) the literals and variables the new path is built from.
//! Pure: templates in, regexes and paths out; the grammar and limits are Envoy's, so a template
//! Envoy refuses is refused here too.

use regex::Regex;

use super::super::Problem;

/// The characters a literal may hold (RFC 3986's pchar without `*` and `=`), as Envoy allows.
const LITERAL: &str = "a-zA-Z0-9\\-._~%!$&'()+,;:@";
const MAX_VARIABLES: usize = 5;
const MAX_VARIABLE_NAME: usize = 16;

/// A path template a route matches with.
#[derive(Clone, Debug)]
pub struct PathTemplate {
    pub template: String,
    /// Anchored at both ends; one named group per variable.
    pub regex: Regex,
}

/// A path rebuilt from the variables a [`PathTemplate`] captured.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TemplateRewrite(Vec<RewritePart>);

#[derive(Clone, Debug, PartialEq, Eq)]
enum RewritePart {
    Literal(String),
    Variable(String),
}

fn invalid(template: &str, expected: &'static str) -> Problem {
    Problem::NotValid {
        value: template.to_string(),
        expected,
    }
}

const MATCH_GRAMMAR: &str = "a URI template: `/`-separated literals, `*`, `**` (nothing after \
    it may glob) and variables `{name}` or `{name=…}`, at most 5, names of 1 to 16 characters";

impl PathTemplate {
    pub fn parse(template: &str) -> Result<PathTemplate, Problem> {
        let pattern = template_regex(template).ok_or_else(|| invalid(template, MATCH_GRAMMAR))?;
        let regex = Regex::new(&format!("^{pattern}$")).map_err(|error| Problem::Regex {
            pattern: pattern.clone(),
            error,
        })?;
        Ok(PathTemplate {
            template: template.to_string(),
            regex,
        })
    }

    /// Whether `path` (without its query) matches.
    pub fn matches(&self, path: &str) -> bool {
        self.regex.is_match(path)
    }
}

/// One piece of a template: a glob or a literal.
enum Piece<'t> {
    Literal(&'t str),
    /// `*`: one segment.
    PathGlob,
    /// `**`: any number of segments.
    TextGlob,
}

impl Piece<'_> {
    fn regex(&self) -> String {
        match self {
            Piece::Literal(text) => regex::escape(text),
            Piece::PathGlob => format!("[{LITERAL}]+"),
            Piece::TextGlob => format!("[{LITERAL}/]*"),
        }
    }
}

fn is_literal(text: &str) -> bool {
    !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-._~%!$&'()+,;:@".contains(c))
}

fn is_variable_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A glob (`*`, `**`) or a literal up to the next `/`, and what follows it.
fn piece(text: &str) -> Option<(Piece<'_>, &str)> {
    if let Some(rest) = text.strip_prefix("**") {
        return Some((Piece::TextGlob, rest));
    }
    if let Some(rest) = text.strip_prefix('*') {
        return Some((Piece::PathGlob, rest));
    }
    let end = text.find('/').unwrap_or(text.len());
    is_literal(&text[..end]).then(|| (Piece::Literal(&text[..end]), &text[end..]))
}

/// Tracks the globs of a template: none may follow a `**`.
#[derive(Default)]
struct Globs {
    after_text_glob: bool,
}

impl Globs {
    fn see(&mut self, piece: &Piece<'_>) -> Option<()> {
        let glob = !matches!(piece, Piece::Literal(_));
        if glob && self.after_text_glob {
            return None;
        }
        self.after_text_glob |= matches!(piece, Piece::TextGlob);
        Some(())
    }
}

/// A variable `{name}` or `{name=pieces}` at the start of `text`: its regex, and what follows.
fn variable<'t>(
    text: &'t str,
    names: &mut Vec<String>,
    globs: &mut Globs,
) -> Option<(String, &'t str)> {
    let (inside, rest) = text.strip_prefix('{')?.split_once('}')?;
    let (name, pattern) = match inside.split_once('=') {
        Some((name, pattern)) => (name, Some(pattern)),
        None => (inside, None),
    };
    if !is_variable_name(name)
        || name.len() > MAX_VARIABLE_NAME
        || names.iter().any(|n| n == name)
        || names.len() == MAX_VARIABLES
    {
        return None;
    }
    names.push(name.to_string());
    let mut regexes = Vec::new();
    match pattern {
        None => {
            globs.see(&Piece::PathGlob)?;
            regexes.push(Piece::PathGlob.regex());
        }
        Some("") => return None,
        Some(mut pattern) => loop {
            let (found, after) = piece(pattern)?;
            globs.see(&found)?;
            regexes.push(found.regex());
            if after.is_empty() {
                break;
            }
            pattern = after.strip_prefix('/').filter(|a| !a.is_empty())?;
        },
    }
    Some((format!("(?P<{name}>{})", regexes.join("/")), rest))
}

/// The regex of a match template, unanchored; None when the template breaks the grammar.
fn template_regex(template: &str) -> Option<String> {
    let mut rest = template.strip_prefix('/')?;
    if !template.chars().all(|c| c.is_ascii_graphic()) {
        return None;
    }
    let (mut names, mut globs) = (Vec::new(), Globs::default());
    let mut segments = Vec::new();
    let mut suffix = String::new();
    while !rest.is_empty() {
        let (segment, after) = if rest.starts_with('{') {
            variable(rest, &mut names, &mut globs)?
        } else {
            let (found, after) = piece(rest)?;
            globs.see(&found)?;
            (found.regex(), after)
        };
        segments.push(segment);
        rest = after;
        if rest == "/" {
            // A trailing slash: an empty last segment.
            segments.push(String::new());
            break;
        }
        if let Some(after) = rest.strip_prefix('/') {
            rest = after;
        } else if !rest.is_empty() {
            // Text glued to the last segment (`*.png`): a suffix, which must end the template.
            let (Piece::Literal(text), "") = piece(rest)? else {
                return None;
            };
            suffix = regex::escape(text);
            break;
        }
    }
    Some(format!("/{}{suffix}", segments.join("/")))
}

const REWRITE_GRAMMAR: &str = "a URI template rewrite: starting with `/`, no `//`, literals and \
    `{name}` variables of the route's match template";

impl TemplateRewrite {
    /// A rewrite template, checked against the variables of the template it rewrites from.
    pub fn parse(template: &str, matched: &PathTemplate) -> Result<TemplateRewrite, Problem> {
        let refused = || invalid(template, REWRITE_GRAMMAR);
        if !template.starts_with('/') || template.contains("//") {
            return Err(refused());
        }
        let mut parts = Vec::new();
        let mut rest = template;
        while !rest.is_empty() {
            let (literal, after) = rest.split_once('{').unwrap_or((rest, ""));
            if !literal.is_empty() {
                if !literal.split('/').all(|l| l.is_empty() || is_literal(l)) {
                    return Err(refused());
                }
                parts.push(RewritePart::Literal(literal.to_string()));
            }
            if !rest.contains('{') {
                break;
            }
            let (name, after) = after.split_once('}').ok_or_else(refused)?;
            let captured = matched.regex.capture_names().flatten().any(|n| n == name);
            if !is_variable_name(name) || !captured {
                return Err(refused());
            }
            parts.push(RewritePart::Variable(name.to_string()));
            rest = after;
        }
        Ok(TemplateRewrite(parts))
    }

    /// `path` (without its query) rebuilt; None when `matched` does not match it.
    pub fn rewrite(&self, matched: &PathTemplate, path: &str) -> Option<String> {
        let captures = matched.regex.captures(path)?;
        Some(
            self.0
                .iter()
                .map(|part| match part {
                    RewritePart::Literal(text) => text.as_str(),
                    RewritePart::Variable(name) => captures.name(name).map_or("", |m| m.as_str()),
                })
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template(text: &str) -> PathTemplate {
        PathTemplate::parse(text).unwrap()
    }

    #[test]
    fn match_templates_match_as_envoys_uri_template_matcher() {
        let users = template("/users/{id}/**");
        assert!(users.matches("/users/7/"));
        assert!(users.matches("/users/7/a/b"));
        assert!(!users.matches("/users/7"), "`/**` needs the slash");
        assert!(
            !users.matches("/users//a"),
            "a variable holds one non-empty segment"
        );
        let images = template("/img/{name=*}.png");
        assert!(images.matches("/img/cat.png"));
        assert!(!images.matches("/img/a/cat.png"));
        assert!(
            !images.matches("/img/catxpng"),
            "the suffix's dot is literal"
        );
        let nested = template("/v1/{path=files/**}");
        assert!(nested.matches("/v1/files/a/b"));
        assert!(!nested.matches("/v1/other/a"));
        assert!(template("/a/").matches("/a/"));
        assert!(!template("/a/").matches("/a"));
    }

    #[test]
    fn templates_envoy_refuses_are_refused() {
        for bad in [
            "users/{id}",
            "/a//b",
            "/**/x/*",
            "/{a}/{a}",
            "/{a}/{b}/{c}/{d}/{e}/{f}",
            "/{waytoolongvariablename}",
            "/{1x}",
            "/{x=}",
            "/a*b",
            "/{x",
            "/a b",
            "/a=b",
        ] {
            assert!(PathTemplate::parse(bad).is_err(), "{bad} was taken");
        }
    }

    #[test]
    fn rewrites_rebuild_the_path_from_the_captured_variables() {
        let matched = template("/users/{id}/{rest=**}");
        let rewrite = TemplateRewrite::parse("/u/{rest}/of/{id}", &matched).unwrap();
        assert_eq!(
            rewrite.rewrite(&matched, "/users/7/a/b").as_deref(),
            Some("/u/a/b/of/7")
        );
        assert_eq!(rewrite.rewrite(&matched, "/other"), None);
        assert!(TemplateRewrite::parse("/u/{missing}", &matched).is_err());
        assert!(TemplateRewrite::parse("u/{id}", &matched).is_err());
        assert!(TemplateRewrite::parse("/u//{id}", &matched).is_err());
    }
}
