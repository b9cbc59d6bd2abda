//! Plan templates: `{{ release.version }}`, `{{ vars.port }}`, `{{ target.address }}`.
//!
//! Names are checked when the plan is checked, not when it runs. A template that reaches a shell is
//! rendered as references to environment variables (`${port}`), never as pasted values, so no value is
//! ever parsed as shell text.

use std::borrow::Cow;

use crate::source::Span;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    pub raw: String,
    pub parts: Vec<Part>,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    Text(String),
    Ref(TemplateRef),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateRef {
    /// The dotted name as written, e.g. `vars.port`.
    pub path: String,
    pub span: Span,
}

/// What a template name refers to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RefKind {
    ReleaseName,
    ReleaseVersion,
    ReleaseChange,
    ReleaseOwner,
    Environment,
    TargetName,
    TargetAddress,
    ArtifactPath,
    Var(String),
    Secret(String),
}

/// Every fixed name, for "did you mean" hints and the docs.
pub const FIXED_NAMES: &[&str] = &[
    "release.name",
    "release.version",
    "release.change",
    "release.owner",
    "environment.name",
    "target.name",
    "target.address",
    "artifact.path",
];

impl RefKind {
    pub fn parse(path: &str) -> Option<RefKind> {
        Some(match path {
            "release.name" => RefKind::ReleaseName,
            "release.version" => RefKind::ReleaseVersion,
            "release.change" => RefKind::ReleaseChange,
            "release.owner" => RefKind::ReleaseOwner,
            "environment.name" | "env.name" => RefKind::Environment,
            "target.name" => RefKind::TargetName,
            "target.address" => RefKind::TargetAddress,
            "artifact.path" => RefKind::ArtifactPath,
            _ => {
                if let Some(name) = path.strip_prefix("vars.") {
                    RefKind::Var(name.to_string())
                } else if let Some(name) = path.strip_prefix("secrets.") {
                    RefKind::Secret(name.to_string())
                } else {
                    return None;
                }
            }
        })
    }

    /// The environment variable a step's process receives this value under.
    pub fn env_name(&self) -> Cow<'_, str> {
        match self {
            RefKind::ReleaseName => "SLIPWAY_RELEASE".into(),
            RefKind::ReleaseVersion => "SLIPWAY_VERSION".into(),
            RefKind::ReleaseChange => "SLIPWAY_CHANGE".into(),
            RefKind::ReleaseOwner => "SLIPWAY_OWNER".into(),
            RefKind::Environment => "SLIPWAY_ENVIRONMENT".into(),
            RefKind::TargetName => "SLIPWAY_TARGET".into(),
            RefKind::TargetAddress => "SLIPWAY_TARGET_ADDRESS".into(),
            RefKind::ArtifactPath => "SLIPWAY_ARTIFACT".into(),
            RefKind::Var(n) | RefKind::Secret(n) => n.as_str().into(),
        }
    }
}

/// Supplies values when a template is rendered for one target.
pub trait Lookup {
    fn lookup(&self, r: &RefKind) -> Option<Cow<'_, str>>;
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct TemplateError {
    pub message: String,
    pub span: Span,
}

/// Is `name` usable as an environment variable name (and so as a variable or secret name)?
pub fn is_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl Template {
    /// A template with no references.
    pub fn literal(text: impl Into<String>) -> Template {
        let raw = text.into();
        Template {
            parts: vec![Part::Text(raw.clone())],
            raw,
            span: Span::default(),
        }
    }

    /// Parses `raw`; `text_start` is the byte offset of `raw`'s first character in the plan, when
    /// the scalar was written without escapes, so references get exact spans.
    pub fn parse(
        raw: &str,
        span: Span,
        text_start: Option<usize>,
    ) -> Result<Template, TemplateError> {
        let at = |from: usize, to: usize| match text_start {
            Some(s) => Span::new(s + from, s + to),
            None => span,
        };
        let mut parts = Vec::new();
        let mut rest = 0;
        while let Some(open) = raw[rest..].find("{{") {
            let open = rest + open;
            if open > rest {
                parts.push(Part::Text(raw[rest..open].to_string()));
            }
            let Some(close) = raw[open + 2..].find("}}") else {
                return Err(TemplateError {
                    message: "`{{` is not closed by `}}`".into(),
                    span: at(open, raw.len()),
                });
            };
            let close = open + 2 + close;
            let inner = raw[open + 2..close].trim();
            let valid = !inner.is_empty()
                && inner.split('.').all(|seg| {
                    !seg.is_empty()
                        && seg
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
                });
            if !valid {
                return Err(TemplateError {
                    message: format!(
                        "`{{{{{}}}}}` is not a name like `vars.port`",
                        &raw[open + 2..close]
                    ),
                    span: at(open, close + 2),
                });
            }
            parts.push(Part::Ref(TemplateRef {
                path: inner.to_string(),
                span: at(open, close + 2),
            }));
            rest = close + 2;
        }
        if rest < raw.len() {
            parts.push(Part::Text(raw[rest..].to_string()));
        }
        Ok(Template {
            raw: raw.to_string(),
            parts,
            span,
        })
    }

    pub fn refs(&self) -> impl Iterator<Item = &TemplateRef> {
        self.parts.iter().filter_map(|p| match p {
            Part::Ref(r) => Some(r),
            Part::Text(_) => None,
        })
    }

    pub fn has_refs(&self) -> bool {
        self.refs().next().is_some()
    }

    /// Renders with values substituted; for argv elements, URLs and addresses (never shell text).
    /// Returns the first name without a value as the error.
    pub fn render(&self, lookup: &dyn Lookup) -> Result<String, String> {
        let mut out = String::with_capacity(self.raw.len());
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Ref(r) => {
                    let kind = RefKind::parse(&r.path).ok_or_else(|| r.path.clone())?;
                    let value = lookup.lookup(&kind).ok_or_else(|| r.path.clone())?;
                    out.push_str(&value);
                }
            }
        }
        Ok(out)
    }

    /// Renders for `sh -c`: each reference becomes `${NAME}` of the variable the process receives.
    pub fn render_shell(&self) -> String {
        let mut out = String::with_capacity(self.raw.len());
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Ref(r) => match RefKind::parse(&r.path) {
                    Some(kind) => {
                        out.push_str("${");
                        out.push_str(&kind.env_name());
                        out.push('}');
                    }
                    // Unknown names are refused by `check`; keep them inert if one slips through.
                    None => out.push_str("''"),
                },
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Vals;
    impl Lookup for Vals {
        fn lookup(&self, r: &RefKind) -> Option<Cow<'_, str>> {
            match r {
                RefKind::ReleaseVersion => Some("2.4.0".into()),
                RefKind::Var(n) if n == "port" => Some("8080".into()),
                _ => None,
            }
        }
    }

    #[test]
    fn parses_and_renders_values() {
        let t = Template::parse(
            "http://x:{{ vars.port }}/v{{release.version}}",
            Span::default(),
            Some(0),
        )
        .expect("parses");
        assert_eq!(t.refs().count(), 2);
        assert_eq!(t.render(&Vals).as_deref(), Ok("http://x:8080/v2.4.0"));
        assert_eq!(t.refs().next().map(|r| r.span), Some(Span::new(9, 24)));
    }

    #[test]
    fn shell_rendering_uses_variable_references() {
        let t = Template::parse(
            "echo {{ vars.port }} {{ release.version }}",
            Span::default(),
            None,
        )
        .expect("parses");
        assert_eq!(t.render_shell(), "echo ${port} ${SLIPWAY_VERSION}");
    }

    #[test]
    fn reports_malformed_templates() {
        assert!(Template::parse("a {{ vars.port", Span::default(), Some(0)).is_err());
        assert!(Template::parse("a {{ }} b", Span::default(), Some(0)).is_err());
        assert!(Template::parse("a {{ $(x) }} b", Span::default(), Some(0)).is_err());
        assert_eq!(
            Template::parse("x", Span::default(), None).map(|t| t.render(&Vals)),
            Ok(Ok("x".to_string()))
        );
        let missing = Template::parse("{{ vars.nope }}", Span::default(), None).expect("parses");
        assert_eq!(missing.render(&Vals), Err("vars.nope".to_string()));
    }
}
