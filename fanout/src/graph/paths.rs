//! Matching a resource path against the catalog's templates: which row and
//! which template a path a user wrote (or Graph answered) resolves to.

use super::catalog::{Kind, Template, KINDS};

/// A resource path split into what matching needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourcePath {
    /// Segments with `name('key')` split into `name`, `key`, and `me` as `users`, `me`.
    pub segments: Vec<String>,
    /// The query string after `?`, if any (e.g. `$select=subject`).
    pub query: Option<String>,
    /// Whether the path starts with `/me` (the signed-in user: delegated only).
    pub uses_me: bool,
}

impl ResourcePath {
    pub fn parse(resource: &str) -> ResourcePath {
        let (path, query) = match resource.split_once('?') {
            Some((path, query)) => (path, Some(query.to_string())),
            None => (resource, None),
        };
        let mut segments = Vec::new();
        for raw in path.split('/').filter(|s| !s.is_empty()) {
            match raw.split_once('(') {
                Some((name, key)) => {
                    segments.push(name.to_string());
                    segments.push(key.trim_end_matches(')').trim_matches('\'').to_string());
                }
                None => segments.push(raw.to_string()),
            }
        }
        let uses_me = segments.first().is_some_and(|s| s.eq_ignore_ascii_case("me"));
        if uses_me {
            segments[0] = "me".into();
            segments.insert(0, "users".into());
        }
        ResourcePath { segments, query, uses_me }
    }

    /// How many literal segments of `template` match, or `None` if it does not.
    pub fn specificity(&self, template: &str) -> Option<usize> {
        let parts: Vec<&str> = template.split('/').filter(|s| !s.is_empty()).collect();
        if parts.len() != self.segments.len() {
            return None;
        }
        let mut literal = 0;
        for (part, segment) in parts.iter().zip(&self.segments) {
            if *part == "{id}" {
                continue;
            }
            if !part.eq_ignore_ascii_case(segment) {
                return None;
            }
            literal += 1;
        }
        Some(literal)
    }

    /// A query parameter's value (`$select`, `$filter`), names compared case-insensitively.
    pub fn query_param(&self, name: &str) -> Option<&str> {
        self.query.as_deref()?.split('&').find_map(|pair| {
            let (key, value) = pair.split_once('=')?;
            key.eq_ignore_ascii_case(name).then_some(value)
        })
    }
}

/// The row and template a path resolves to.
#[derive(Debug, Clone, Copy)]
pub struct Match {
    pub kind: &'static Kind,
    pub template: &'static Template,
}

impl Match {
    /// The changeTypes this exact path supports.
    pub fn change_types(&self) -> &'static [&'static str] {
        self.template.change_types.unwrap_or(self.kind.change_types)
    }

    /// `path` in the API reference's spelling, when it was written in one
    /// of the template's aliases (`None` when it already is): the template's
    /// literal segments, the path's ids and query.
    pub fn canonical(&self, path: &ResourcePath) -> Option<String> {
        if path.specificity(self.template.path).is_some() {
            return None;
        }
        let parts = self.template.path.split('/').filter(|s| !s.is_empty());
        let segments: Vec<&str> =
            parts.zip(&path.segments).map(|(part, segment)| if part == "{id}" { segment } else { part }).collect();
        let query = path.query.as_ref().map(|q| format!("?{q}")).unwrap_or_default();
        Some(format!("/{}{query}", segments.join("/")))
    }
}

/// The most specific rows whose templates match `path` (several when rows
/// share a path, as OneDrive personal and business do).
pub fn resolve(path: &ResourcePath) -> Vec<Match> {
    let mut best: Vec<(usize, Match)> = Vec::new();
    for kind in &KINDS {
        for template in kind.templates {
            let spellings = std::iter::once(&template.path).chain(template.aliases);
            let Some(score) = spellings.filter_map(|spelling| path.specificity(spelling)).max() else { continue };
            best.retain(|(s, _)| *s >= score);
            if best.first().is_none_or(|(s, _)| *s <= score) {
                best.push((score, Match { kind, template }));
            }
        }
    }
    best.into_iter().map(|(_, m)| m).collect()
}
