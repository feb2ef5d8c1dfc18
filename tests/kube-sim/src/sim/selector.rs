//! Label and field selectors (`labelSelector`, `fieldSelector` query parameters); pure parsing and matching.

use super::status::ApiError;
use serde_json::Value;

#[derive(Debug, Clone)]
enum LabelReq {
    Eq(String, String),
    NotEq(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
}

/// A parsed label selector; empty matches everything.
#[derive(Debug, Clone, Default)]
pub struct LabelSelector(Vec<LabelReq>);

/// Split on commas that are not inside parentheses.
fn split_top(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut depth, mut start) = (0i32, 0usize);
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

fn set_values(s: &str, whole: &str) -> Result<Vec<String>, ApiError> {
    let inner = s
        .trim()
        .strip_prefix('(')
        .and_then(|r| r.strip_suffix(')'))
        .ok_or_else(|| ApiError::bad_request(format!("unable to parse requirement: found '{s}', expected: '(' in label selector {whole:?}")))?;
    Ok(inner
        .split(',')
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .collect())
}

impl LabelSelector {
    /// Parse `a=b,c!=d,e in (x,y),f notin (z),g,!h`.
    ///
    /// # Errors
    /// 400 BadRequest naming the selector when it does not parse.
    pub fn parse(s: &str) -> Result<Self, ApiError> {
        let mut reqs = Vec::new();
        for part in split_top(s) {
            let p = part.trim();
            if p.is_empty() {
                continue;
            }
            if let Some(k) = p.strip_prefix('!') {
                reqs.push(LabelReq::NotExists(k.trim().to_string()));
            } else if let Some((k, v)) = p.split_once("!=") {
                reqs.push(LabelReq::NotEq(k.trim().to_string(), v.trim().to_string()));
            } else if let Some((k, v)) = p.split_once("==") {
                reqs.push(LabelReq::Eq(k.trim().to_string(), v.trim().to_string()));
            } else if let Some((k, v)) = p.split_once('=') {
                reqs.push(LabelReq::Eq(k.trim().to_string(), v.trim().to_string()));
            } else if let Some((k, v)) = p.split_once(" notin ") {
                reqs.push(LabelReq::NotIn(k.trim().to_string(), set_values(v, s)?));
            } else if let Some((k, v)) = p.split_once(" in ") {
                reqs.push(LabelReq::In(k.trim().to_string(), set_values(v, s)?));
            } else if p
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c))
            {
                reqs.push(LabelReq::Exists(p.to_string()));
            } else {
                return Err(ApiError::bad_request(format!(
                    "unable to parse requirement {p:?} in label selector {s:?}"
                )));
            }
        }
        Ok(LabelSelector(reqs))
    }

    /// Whether the selector is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether the object's `metadata.labels` satisfy every requirement.
    pub fn matches(&self, obj: &Value) -> bool {
        let labels = obj.get("metadata").and_then(|m| m.get("labels"));
        let get = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
        self.0.iter().all(|r| match r {
            LabelReq::Eq(k, v) => get(k) == Some(v.as_str()),
            LabelReq::NotEq(k, v) => get(k) != Some(v.as_str()),
            LabelReq::In(k, vs) => get(k).is_some_and(|x| vs.iter().any(|v| v == x)),
            LabelReq::NotIn(k, vs) => get(k).is_none_or(|x| !vs.iter().any(|v| v == x)),
            LabelReq::Exists(k) => get(k).is_some(),
            LabelReq::NotExists(k) => get(k).is_none(),
        })
    }
}

/// One field label a resource supports: the label clients send and the JSON paths of the stored
/// object it reads (the first non-empty one wins, for labels with a fallback such as Event `source`).
pub type FieldLabel = (&'static str, &'static [&'static str]);

/// Labels every resource supports (kube-apiserver's default field label conversion).
const META_LABELS: &[FieldLabel] = &[
    ("metadata.name", &["metadata.name"]),
    ("metadata.namespace", &["metadata.namespace"]),
];

/// Extra field labels per (group, plural), besides `metadata.name` / `metadata.namespace`, as
/// kube-apiserver registers them (its field label conversion functions). Paths are read from the
/// stored object: `events.k8s.io` Events are stored as core Events, so their `regarding.*` labels
/// read `involvedObject.*`. Add a row when a served kind gains a selectable field.
const FIELD_LABELS: &[(&str, &str, &[FieldLabel])] = &[
    (
        "",
        "pods",
        &[
            ("spec.nodeName", &["spec.nodeName"]),
            // Old v1 clients' name for spec.nodeName.
            ("spec.host", &["spec.nodeName"]),
            ("spec.restartPolicy", &["spec.restartPolicy"]),
            ("spec.schedulerName", &["spec.schedulerName"]),
            ("spec.serviceAccountName", &["spec.serviceAccountName"]),
            ("spec.hostNetwork", &["spec.hostNetwork"]),
            ("status.phase", &["status.phase"]),
            ("status.podIP", &["status.podIP"]),
            ("status.nominatedNodeName", &["status.nominatedNodeName"]),
        ],
    ),
    ("", "namespaces", &[("status.phase", &["status.phase"])]),
    ("", "secrets", &[("type", &["type"])]),
    (
        "",
        "services",
        &[
            ("spec.clusterIP", &["spec.clusterIP"]),
            ("spec.type", &["spec.type"]),
        ],
    ),
    (
        "",
        "nodes",
        &[("spec.unschedulable", &["spec.unschedulable"])],
    ),
    (
        "",
        "replicationcontrollers",
        &[("status.replicas", &["status.replicas"])],
    ),
    (
        "apps",
        "replicasets",
        &[("status.replicas", &["status.replicas"])],
    ),
    (
        "batch",
        "jobs",
        &[("status.successful", &["status.successful"])],
    ),
    (
        "",
        "events",
        &[
            ("involvedObject.kind", &["involvedObject.kind"]),
            ("involvedObject.namespace", &["involvedObject.namespace"]),
            ("involvedObject.name", &["involvedObject.name"]),
            ("involvedObject.uid", &["involvedObject.uid"]),
            ("involvedObject.apiVersion", &["involvedObject.apiVersion"]),
            (
                "involvedObject.resourceVersion",
                &["involvedObject.resourceVersion"],
            ),
            ("involvedObject.fieldPath", &["involvedObject.fieldPath"]),
            ("reason", &["reason"]),
            ("reportingComponent", &["reportingComponent"]),
            ("source", &["source.component", "reportingComponent"]),
            ("type", &["type"]),
        ],
    ),
    (
        "events.k8s.io",
        "events",
        &[
            ("regarding.kind", &["involvedObject.kind"]),
            ("regarding.namespace", &["involvedObject.namespace"]),
            ("regarding.name", &["involvedObject.name"]),
            ("regarding.uid", &["involvedObject.uid"]),
            ("regarding.apiVersion", &["involvedObject.apiVersion"]),
            (
                "regarding.resourceVersion",
                &["involvedObject.resourceVersion"],
            ),
            ("regarding.fieldPath", &["involvedObject.fieldPath"]),
            ("reason", &["reason"]),
            ("reportingController", &["reportingComponent"]),
            ("source", &["source.component", "reportingComponent"]),
            ("type", &["type"]),
        ],
    ),
    (
        "certificates.k8s.io",
        "certificatesigningrequests",
        &[("spec.signerName", &["spec.signerName"])],
    ),
    (
        "certificates.k8s.io",
        "podcertificaterequests",
        &[
            ("spec.signerName", &["spec.signerName"]),
            ("spec.podName", &["spec.podName"]),
            ("spec.nodeName", &["spec.nodeName"]),
        ],
    ),
    (
        "certificates.k8s.io",
        "clustertrustbundles",
        &[("spec.signerName", &["spec.signerName"])],
    ),
];

/// The field labels of a built-in resource: (labels besides metadata.*, whether
/// `metadata.namespace` is one; kube-apiserver's conversions for Namespaces and for every
/// `certificates.k8s.io` kind, namespaced PodCertificateRequests included, leave it out).
pub fn builtin_field_labels(group: &str, plural: &str) -> (&'static [FieldLabel], bool) {
    let extra = FIELD_LABELS
        .iter()
        .find(|(g, p, _)| *g == group && *p == plural)
        .map_or(&[][..], |(_, _, l)| *l);
    let namespace = !(group.is_empty() && plural == "namespaces") && group != "certificates.k8s.io";
    (extra, namespace)
}

/// What a resource accepts in `fieldSelector`.
#[derive(Debug, Clone, Copy)]
pub enum FieldLabels<'a> {
    /// A built-in resource: its table row.
    Builtin {
        /// Labels besides metadata.*.
        extra: &'static [FieldLabel],
        /// Whether `metadata.namespace` is accepted.
        namespace: bool,
    },
    /// A custom resource: metadata.* plus the CRD's `selectableFields` (JSON paths without the dot).
    Custom(&'a [String]),
}

/// One requirement: the label as sent, the stored paths it reads, negation, value.
#[derive(Debug, Clone)]
struct FieldReq {
    paths: Vec<Vec<String>>,
    neg: bool,
    value: String,
}

/// A parsed field selector: `label=value` / `label==value` / `label!=value`, comma-separated.
#[derive(Debug, Clone, Default)]
pub struct FieldSelector(Vec<FieldReq>);

fn split_path(p: &str) -> Vec<String> {
    p.split('.').map(str::to_string).collect()
}

impl FieldSelector {
    /// Parse a selector on `metadata.name` / `metadata.namespace` only.
    #[cfg(test)]
    fn parse(s: &str) -> Result<Self, ApiError> {
        Self::parse_for(s, FieldLabels::Custom(&[]))
    }

    /// Parse a selector, accepting only the labels the resource supports, as kube-apiserver does
    /// (`400 field label not supported: <label>` otherwise).
    ///
    /// # Errors
    /// 400 BadRequest for a term without an operator or a label the resource does not support.
    pub fn parse_for(s: &str, labels: FieldLabels<'_>) -> Result<Self, ApiError> {
        let mut reqs = Vec::new();
        for part in s.split(',') {
            let p = part.trim();
            if p.is_empty() {
                continue;
            }
            let (k, neg, v) = if let Some((k, v)) = p.split_once("!=") {
                (k, true, v)
            } else if let Some((k, v)) = p.split_once("==") {
                (k, false, v)
            } else if let Some((k, v)) = p.split_once('=') {
                (k, false, v)
            } else {
                return Err(ApiError::bad_request(format!(
                    "invalid selector: '{s}'; can't understand '{p}'"
                )));
            };
            let label = k.trim();
            let unsupported =
                || ApiError::bad_request(format!("field label not supported: {label}"));
            let paths: Vec<Vec<String>> = match labels {
                FieldLabels::Builtin { extra, namespace } => {
                    let found = META_LABELS
                        .iter()
                        .filter(|(l, _)| namespace || *l != "metadata.namespace")
                        .chain(extra.iter())
                        .find(|(l, _)| *l == label)
                        .ok_or_else(unsupported)?;
                    found.1.iter().map(|p| split_path(p)).collect()
                }
                FieldLabels::Custom(selectable) => {
                    if META_LABELS.iter().any(|(l, _)| *l == label)
                        || selectable.iter().any(|f| f == label)
                    {
                        vec![split_path(label)]
                    } else {
                        return Err(unsupported());
                    }
                }
            };
            reqs.push(FieldReq {
                paths,
                neg,
                value: v.trim().to_string(),
            });
        }
        Ok(FieldSelector(reqs))
    }

    /// Whether the selector is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The value required for `metadata.name`, when the selector pins it (lets a list skip the scan).
    pub fn pinned_name(&self) -> Option<&str> {
        self.0
            .iter()
            .find(|r| {
                !r.neg
                    && r.paths.len() == 1
                    && r.paths[0].len() == 2
                    && r.paths[0][0] == "metadata"
                    && r.paths[0][1] == "name"
            })
            .map(|r| r.value.as_str())
    }

    /// Whether every term matches (missing fields compare as the empty string).
    pub fn matches(&self, obj: &Value) -> bool {
        self.0.iter().all(|r| {
            let got = r
                .paths
                .iter()
                .map(|path| {
                    let mut cur = Some(obj);
                    for seg in path {
                        cur = cur.and_then(|c| c.get(seg));
                    }
                    match cur {
                        Some(Value::String(s)) => s.clone(),
                        Some(Value::Bool(b)) => b.to_string(),
                        Some(Value::Number(n)) => n.to_string(),
                        _ => String::new(),
                    }
                })
                .find(|s| !s.is_empty())
                .unwrap_or_default();
            (got == r.value) != r.neg
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn label_selector_supports_set_and_existence_terms() {
        let o = json!({"metadata": {"labels": {"app": "x", "tier": "web"}}});
        assert!(
            LabelSelector::parse("app=x,tier in (web,db),!gone")
                .unwrap()
                .matches(&o)
        );
        assert!(!LabelSelector::parse("app notin (x)").unwrap().matches(&o));
        assert!(!LabelSelector::parse("missing").unwrap().matches(&o));
    }

    #[test]
    fn field_selector_matches_metadata_name() {
        let o = json!({"metadata": {"name": "a", "namespace": "ns"}});
        assert!(
            FieldSelector::parse("metadata.name=a,metadata.namespace!=other")
                .unwrap()
                .matches(&o)
        );
        assert!(!FieldSelector::parse("metadata.name=b").unwrap().matches(&o));
        assert!(FieldSelector::parse("nonsense").is_err());
    }

    #[test]
    fn field_labels_are_limited_per_resource() {
        let (extra, ns) = builtin_field_labels("", "secrets");
        let l = FieldLabels::Builtin {
            extra,
            namespace: ns,
        };
        assert!(FieldSelector::parse_for("type=Opaque,metadata.namespace=a", l).is_ok());
        let e = FieldSelector::parse_for("data.x=y", l).unwrap_err();
        assert_eq!(
            (e.code, e.message.as_str()),
            (400, "field label not supported: data.x")
        );
        let (extra, ns) = builtin_field_labels("", "namespaces");
        let l = FieldLabels::Builtin {
            extra,
            namespace: ns,
        };
        assert!(FieldSelector::parse_for("status.phase=Active", l).is_ok());
        assert!(FieldSelector::parse_for("metadata.namespace=x", l).is_err());
        let sel = vec!["spec.color".to_string()];
        assert!(FieldSelector::parse_for("spec.color=red", FieldLabels::Custom(&sel)).is_ok());
        assert!(FieldSelector::parse_for("spec.size=1", FieldLabels::Custom(&sel)).is_err());
    }

    #[test]
    fn certificates_kinds_take_no_namespace_label() {
        for plural in [
            "certificatesigningrequests",
            "podcertificaterequests",
            "clustertrustbundles",
        ] {
            let (extra, ns) = builtin_field_labels("certificates.k8s.io", plural);
            let l = FieldLabels::Builtin {
                extra,
                namespace: ns,
            };
            let e = FieldSelector::parse_for("metadata.namespace=default", l).unwrap_err();
            assert_eq!(
                (e.code, e.message.as_str()),
                (400, "field label not supported: metadata.namespace"),
                "{plural}"
            );
            assert!(
                FieldSelector::parse_for("metadata.name=a,spec.signerName=example.com/s", l)
                    .is_ok(),
                "{plural}"
            );
        }
        let (extra, ns) = builtin_field_labels("", "pods");
        let pods = FieldLabels::Builtin {
            extra,
            namespace: ns,
        };
        assert!(FieldSelector::parse_for("metadata.namespace=default", pods).is_ok());
    }

    #[test]
    fn event_source_falls_back_to_the_reporting_component() {
        let (extra, ns) = builtin_field_labels("", "events");
        let l = FieldLabels::Builtin {
            extra,
            namespace: ns,
        };
        let a = json!({"source": {"component": "kubelet"}, "reportingComponent": "x"});
        let b = json!({"reportingComponent": "ctrl"});
        assert!(
            FieldSelector::parse_for("source=kubelet", l)
                .unwrap()
                .matches(&a)
        );
        assert!(
            FieldSelector::parse_for("source=ctrl", l)
                .unwrap()
                .matches(&b)
        );
        let (extra, ns) = builtin_field_labels("events.k8s.io", "events");
        let l = FieldLabels::Builtin {
            extra,
            namespace: ns,
        };
        let o = json!({"involvedObject": {"name": "cr1"}});
        assert!(
            FieldSelector::parse_for("regarding.name=cr1", l)
                .unwrap()
                .matches(&o)
        );
        assert!(FieldSelector::parse_for("involvedObject.name=cr1", l).is_err());
    }
}
