//! v2 filtered-stream rules: make the app's rules match the config before connecting.
//!
//! The config's rules are validated with `dry_run` first (an invalid rule stops start-up with
//! X's own message); rules the config no longer has are deleted unless
//! `keep_unowned_rules`; a rule whose tag changed is deleted and added again (X cannot edit
//! tags).

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

use crate::auth::Auth;
use crate::config::RuleConfig;
use crate::stream::problem_detail;

/// A rule as the app has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppRule {
    pub id: String,
    pub value: String,
    pub tag: Option<String>,
}

/// What reconciliation will do.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Plan {
    pub add: Vec<RuleConfig>,
    pub delete: Vec<AppRule>,
}

/// Compare the app's rules with the wanted ones.
pub fn plan(existing: &[AppRule], wanted: &[RuleConfig], keep_unowned: bool) -> Plan {
    let same = |a: &AppRule, w: &RuleConfig| a.value == w.value && a.tag == w.tag;
    let add = wanted
        .iter()
        .filter(|w| !existing.iter().any(|a| same(a, w)))
        .cloned()
        .collect();
    let delete = existing
        .iter()
        .filter(|a| !wanted.iter().any(|w| same(a, w)))
        // Unowned rules stay when asked, unless they hold a value we want with another tag.
        .filter(|a| !keep_unowned || wanted.iter().any(|w| w.value == a.value))
        .cloned()
        .collect();
    Plan { add, delete }
}

pub struct RulesApi<'a> {
    pub client: &'a reqwest::Client,
    pub url: String,
    pub auth: &'a Auth,
}

impl RulesApi<'_> {
    pub async fn list(&self) -> Result<Vec<AppRule>> {
        let resp = self
            .client
            .get(&self.url)
            .header("authorization", self.auth.header("GET", &self.url, &[]))
            .send()
            .await
            .with_context(|| format!("GET {}", self.url))?;
        let (status, body) = (resp.status(), resp.text().await.unwrap_or_default());
        if !status.is_success() {
            bail!(
                "GET {} answered {status}: {}",
                self.url,
                problem_detail(&body)
            );
        }
        let v: Value = serde_json::from_str(&body).context("rules response is not JSON")?;
        Ok(v["data"]
            .as_array()
            .map(|rules| {
                rules
                    .iter()
                    .map(|r| AppRule {
                        id: r["id"]
                            .as_str()
                            .map(str::to_string)
                            .unwrap_or_else(|| r["id"].to_string()),
                        value: r["value"].as_str().unwrap_or("").to_string(),
                        tag: r["tag"].as_str().map(str::to_string),
                    })
                    .collect()
            })
            .unwrap_or_default())
    }

    async fn post(&self, body: Value, dry_run: bool) -> Result<Value> {
        let url = if dry_run {
            format!("{}?dry_run=true", self.url)
        } else {
            self.url.clone()
        };
        let params: Vec<(String, String)> = if dry_run {
            vec![("dry_run".into(), "true".into())]
        } else {
            vec![]
        };
        let resp = self
            .client
            .post(&url)
            .header(
                "authorization",
                self.auth.header("POST", &self.url, &params),
            )
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .with_context(|| format!("POST {url}"))?;
        let (status, text) = (resp.status(), resp.text().await.unwrap_or_default());
        let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if !status.is_success()
            || v.get("errors")
                .is_some_and(|e| e.as_array().is_some_and(|a| !a.is_empty()))
        {
            bail!(
                "X rejected the rules (HTTP {status}): {}",
                rule_errors(&v, &text)
            );
        }
        Ok(v)
    }

    /// Validate, delete, add: afterwards the app has exactly the wanted rules (plus unowned ones
    /// when kept).
    pub async fn reconcile(&self, wanted: &[RuleConfig], keep_unowned: bool) -> Result<()> {
        let existing = self.list().await?;
        let plan = plan(&existing, wanted, keep_unowned);
        let adds: Vec<Value> = plan
            .add
            .iter()
            .map(|r| match &r.tag {
                Some(tag) => json!({"value": r.value, "tag": tag}),
                None => json!({"value": r.value}),
            })
            .collect();
        // Validate the new values (a value the app has already, under another tag, is known to
        // be valid and would only be reported as a duplicate).
        let to_validate: Vec<Value> = plan
            .add
            .iter()
            .zip(&adds)
            .filter(|(r, _)| !existing.iter().any(|e| e.value == r.value))
            .map(|(_, v)| v.clone())
            .collect();
        if !to_validate.is_empty() {
            self.post(json!({"add": to_validate}), true)
                .await
                .context("validating twitter.rules")?;
        }
        if !plan.delete.is_empty() {
            let ids: Vec<&str> = plan.delete.iter().map(|r| r.id.as_str()).collect();
            self.post(json!({"delete": {"ids": ids}}), false)
                .await
                .context("deleting rules")?;
        }
        if !adds.is_empty() {
            self.post(json!({"add": adds}), false)
                .await
                .context("adding twitter.rules")?;
        }
        tracing::info!(
            added = plan.add.len(),
            deleted = plan.delete.len(),
            kept = existing.len() - plan.delete.len(),
            "filtered-stream rules reconciled"
        );
        Ok(())
    }
}

/// X's per-rule error messages, e.g. `"cats bogus:op": Reference to invalid operator 'bogus'`.
fn rule_errors(v: &Value, raw: &str) -> String {
    let Some(errors) = v["errors"].as_array() else {
        return problem_detail(raw);
    };
    errors
        .iter()
        .map(|e| {
            let value = e["value"].as_str().unwrap_or("");
            let why = e["details"]
                .as_array()
                .map(|d| {
                    d.iter()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join("; ")
                })
                .filter(|s| !s.is_empty())
                .or_else(|| e["detail"].as_str().map(str::to_string))
                .or_else(|| e["title"].as_str().map(str::to_string))
                .or_else(|| e["message"].as_str().map(str::to_string))
                .unwrap_or_default();
            if value.is_empty() {
                why
            } else {
                format!("\"{value}\": {why}")
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app(id: &str, value: &str, tag: Option<&str>) -> AppRule {
        AppRule {
            id: id.into(),
            value: value.into(),
            tag: tag.map(str::to_string),
        }
    }
    fn want(value: &str, tag: Option<&str>) -> RuleConfig {
        RuleConfig {
            value: value.into(),
            tag: tag.map(str::to_string),
        }
    }

    #[test]
    fn plans_adds_deletes_and_tag_changes() {
        let existing = vec![
            app("1", "cats", Some("pets")),
            app("2", "dogs", Some("old")),
            app("3", "other", None),
        ];
        let wanted = vec![
            want("cats", Some("pets")),
            want("dogs", Some("new")),
            want("rust", None),
        ];
        let p = plan(&existing, &wanted, false);
        assert_eq!(p.add, vec![want("dogs", Some("new")), want("rust", None)]);
        assert_eq!(
            p.delete,
            vec![app("2", "dogs", Some("old")), app("3", "other", None)]
        );
        let p = plan(&existing, &wanted, true);
        assert_eq!(
            p.delete,
            vec![app("2", "dogs", Some("old"))],
            "unowned `other` is kept"
        );
        assert_eq!(plan(&existing[..1], &wanted[..1], false), Plan::default());
    }

    #[test]
    fn error_messages_quote_the_rule() {
        let v: Value = serde_json::from_str(r#"{"errors":[{"value":"cats bogus:op","details":["Reference to invalid operator 'bogus'"]}]}"#).unwrap();
        assert_eq!(
            rule_errors(&v, ""),
            "\"cats bogus:op\": Reference to invalid operator 'bogus'"
        );
    }
}
