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
use crate::problem::Problem;

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
    /// Every rule of the app, page after page (`max_results=1000`, `pagination_token`).
    pub async fn list(&self) -> Result<Vec<AppRule>> {
        let mut rules = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut params = vec![("max_results".to_string(), "1000".to_string())];
            if let Some(t) = &token {
                params.push(("pagination_token".to_string(), t.clone()));
            }
            let url = format!("{}?{}", self.url, crate::auth::form(&params));
            let body = crate::problem::call(
                &format!("GET {}", self.url),
                self.client
                    .get(&url)
                    .header("authorization", self.auth.header("GET", &self.url, &params)),
            )
            .await?;
            let v: Value = serde_json::from_str(&body).context("rules response is not JSON")?;
            rules.extend(v["data"].as_array().into_iter().flatten().map(|r| {
                AppRule {
                    id: r["id"]
                        .as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| r["id"].to_string()),
                    value: r["value"].as_str().unwrap_or("").to_string(),
                    tag: r["tag"].as_str().map(str::to_string),
                }
            }));
            match v["meta"]["next_token"].as_str() {
                Some(next) if token.as_deref() != Some(next) => token = Some(next.to_string()),
                _ => return Ok(rules),
            }
        }
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
        let mut v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        // A rule that already exists is what an add wants: `DuplicateRule` is not an error
        // (a server that honours no `dry_run` answers it after validation added the rules).
        let present = take_duplicates(&mut v);
        if present > 0 {
            tracing::info!(
                present,
                "rules already present (DuplicateRule): kept as they are"
            );
        }
        let errors_left = v
            .get("errors")
            .is_some_and(|e| e.as_array().is_some_and(|a| !a.is_empty()));
        let only_duplicates = present > 0 && !errors_left && status.as_u16() == 400;
        if (!status.is_success() && !only_duplicates) || errors_left {
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

/// Remove the `DuplicateRule` entries from an answer's `errors`; how many there were.
fn take_duplicates(v: &mut Value) -> usize {
    let Some(errors) = v.get_mut("errors").and_then(Value::as_array_mut) else {
        return 0;
    };
    let before = errors.len();
    errors.retain(|e| {
        e["title"].as_str() != Some("DuplicateRule")
            && !e["type"]
                .as_str()
                .is_some_and(|t| t.ends_with("/problems/duplicate-rules"))
    });
    before - errors.len()
}

/// X's per-rule error messages, e.g. `"cats bogus:op": Reference to invalid operator 'bogus'`.
fn rule_errors(v: &Value, raw: &str) -> String {
    let Some(errors) = v["errors"].as_array() else {
        return Problem::parse(raw).summary;
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
    fn duplicate_rules_are_taken_out_of_the_errors() {
        let mut v: Value = serde_json::from_str(r#"{"errors":[
            {"value":"cats","id":"1","title":"DuplicateRule","type":"https://api.twitter.com/2/problems/duplicate-rules"},
            {"value":"x bogus:op","details":["Reference to invalid operator 'bogus'"],"title":"UnprocessableEntity"}]}"#).unwrap();
        assert_eq!(take_duplicates(&mut v), 1);
        assert_eq!(v["errors"].as_array().unwrap().len(), 1);
        assert!(rule_errors(&v, "").contains("bogus"));
        assert_eq!(take_duplicates(&mut json!({"data": []})), 0);
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
