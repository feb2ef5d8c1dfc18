//! HTTP front end: routing, auth, discovery, OpenAPI, verbs and watch streams over hyper.

use super::faults::Faults;
use super::selector::{FieldLabels, FieldSelector, LabelSelector, builtin_field_labels};
use super::status::ApiError;
use super::store::{
    Counters, Event, EventType, Hist, ResourceDef, Store, WriteOpts, WriteOut, watch_line,
};
use super::tap::{WriteRecord, WriteTap};
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{broadcast, mpsc};

/// Response body type.
pub type Body = BoxBody<Bytes, Infallible>;

tokio::task_local! {
    /// Set while a request is served when a fault asks for its answer to be lost.
    static LOSE_RESPONSE: std::cell::Cell<bool>;
}

/// A request served whose answer a fault dropped: hyper closes the connection on it.
#[derive(Debug)]
pub struct LostResponse;

impl std::fmt::Display for LostResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the answer was dropped by an injected fault")
    }
}

impl std::error::Error for LostResponse {}

/// Everything a request handler needs.
#[derive(Debug)]
pub struct Server {
    /// Storage.
    pub store: Arc<Store>,
    /// Call counters.
    pub counters: Counters,
    /// Fault injection.
    pub faults: Faults,
    /// Authentication (tokens, ServiceAccount tokens, anonymous).
    pub auth: Arc<super::auth::Authn>,
    /// Calls per caller, when authentication is on.
    pub recorder: super::rbac::Recorder,
    /// Roles bound per caller, cached until RBAC objects change.
    pub decisions: super::rbac::Decisions,
    /// The emulated Kubernetes release.
    pub release: super::release::Release,
    /// Interval between BOOKMARK events on watches that allow them.
    pub bookmark_interval: Duration,
    /// host:port for discovery's serverAddressByClientCIDRs.
    pub address: String,
    /// Bodies of write requests, when the harness asked for them.
    pub writes: WriteTap,
}

fn full(b: impl Into<Bytes>) -> Body {
    Full::new(b.into()).boxed()
}

fn json_response(code: u16, body: Bytes, warnings: &[String]) -> Response<Body> {
    let mut r = Response::builder()
        .status(StatusCode::from_u16(code).unwrap_or(StatusCode::OK))
        .header(header::CONTENT_TYPE, "application/json");
    for w in warnings {
        // warn-text is a quoted-string: quotes and backslashes escaped, as kube-apiserver sends it.
        let text = w.replace('\\', "\\\\").replace('"', "\\\"");
        r = r.header("Warning", format!("299 - \"{text}\""));
    }
    r.body(full(body))
        .unwrap_or_else(|_| Response::new(full(Bytes::new())))
}

fn value_response(code: u16, v: &Value) -> Response<Body> {
    json_response(
        code,
        Bytes::from(serde_json::to_vec(v).unwrap_or_default()),
        &[],
    )
}

/// Render an API error as a `Status` response.
pub fn error_response(e: &ApiError) -> Response<Body> {
    let mut r = json_response(
        e.code,
        Bytes::from(serde_json::to_vec(&e.to_status()).unwrap_or_default()),
        &[],
    );
    if let Some(s) = e.retry_after
        && let Ok(v) = s.to_string().parse()
    {
        r.headers_mut().insert(header::RETRY_AFTER, v);
    }
    r
}

/// A parsed resource path.
#[derive(Debug)]
struct Target {
    def: Arc<ResourceDef>,
    ns: Option<String>,
    name: Option<String>,
    sub: Option<String>,
}

impl Server {
    /// Serve one request.
    pub async fn handle(
        self: Arc<Self>,
        req: Request<Incoming>,
    ) -> Result<Response<Body>, LostResponse> {
        let (lose, routed) = LOSE_RESPONSE
            .scope(std::cell::Cell::new(false), async {
                let routed = self.route(req).await;
                (LOSE_RESPONSE.with(std::cell::Cell::get), routed)
            })
            .await;
        if lose {
            // An error from the service makes hyper close the connection unanswered.
            return Err(LostResponse);
        }
        Ok(match routed {
            Ok(r) => r,
            Err(e) => error_response(&e),
        })
    }

    fn authenticate(
        &self,
        req: &Request<Incoming>,
    ) -> Result<Arc<super::auth::Identity>, ApiError> {
        let h = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|h| h.to_str().ok());
        self.auth.authenticate(&self.store, h)
    }

    /// Authorize (RBAC for token callers outside `system:masters`) and record the call.
    fn authorize(
        &self,
        id: &super::auth::Identity,
        a: &super::rbac::Attrs,
    ) -> Result<(), ApiError> {
        if !self.auth.enabled {
            return Ok(());
        }
        let ok = self.decisions.allowed(&self.store, id, a);
        self.recorder.record(&id.user, a, ok);
        if ok {
            Ok(())
        } else {
            Err(super::rbac::forbidden(id, a))
        }
    }

    async fn route(self: &Arc<Self>, req: Request<Incoming>) -> Result<Response<Body>, ApiError> {
        let identity = self.authenticate(&req)?;
        self.faults.wait_unpaused().await;
        let raw_path = req.uri().path().to_string();
        let path = raw_path.trim_end_matches('/').to_string();
        let query: HashMap<String, String> = req
            .uri()
            .query()
            .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
            .unwrap_or_default();
        let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        let method = req.method().clone();
        tracing::debug!(
            %method,
            path = %req.uri().path(),
            query = %req.uri().query().unwrap_or_default(),
            content_type = %req.headers().get(header::CONTENT_TYPE).and_then(|h| h.to_str().ok()).unwrap_or_default(),
            accept = %req.headers().get(header::ACCEPT).and_then(|h| h.to_str().ok()).unwrap_or_default(),
            "request"
        );
        if super::auth_hooks::is_non_resource(&segs) {
            let a = super::rbac::Attrs::NonResource {
                verb: method.as_str().to_ascii_lowercase(),
                path: if raw_path.is_empty() {
                    "/".into()
                } else {
                    raw_path.clone()
                },
            };
            self.authorize(&identity, &a)?;
        }
        match segs.as_slice() {
            ["version"] => return Ok(value_response(200, &self.release.version_doc())),
            ["healthz" | "livez" | "readyz"] => return Ok(Response::new(full("ok"))),
            ["api"] => {
                return Ok(value_response(
                    200,
                    &json!({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": self.address}]}),
                ));
            }
            ["apis"] => return Ok(value_response(200, &self.group_list())),
            ["api", "v1"] => {
                return self
                    .resource_list("", "v1")
                    .map(|v| value_response(200, &v));
            }
            ["apis", g] => return self.group(g).map(|v| value_response(200, &v)),
            ["apis", g, v] => return self.resource_list(g, v).map(|v| value_response(200, &v)),
            ["openapi", "v3"] => return Ok(value_response(200, &self.openapi_root())),
            ["openapi", "v3", rest @ ..] => {
                return self.openapi_gv(rest).map(|v| value_response(200, &v));
            }
            _ => {}
        }
        let target = self.parse_target(&segs)?;
        let def = target.def.clone();
        let is_watch = query.get("watch").is_some_and(|w| w == "true" || w == "1");
        let verb = match (&method, &target.name) {
            (&Method::GET, Some(_)) => "get",
            (&Method::GET, None) if is_watch => "watch",
            (&Method::GET, None) => "list",
            (&Method::POST, None) => "create",
            (&Method::POST, Some(_)) if target.sub.is_some() => "create",
            (&Method::PUT, Some(_)) => "update",
            (&Method::PATCH, Some(_)) => "patch",
            (&Method::DELETE, Some(_)) => "delete",
            (&Method::DELETE, None) => "deletecollection",
            _ => {
                return Err(ApiError::method_not_allowed(format!(
                    "the server does not allow this method ({method}) on the requested resource"
                )));
            }
        };
        let sub_name = target.sub.clone().unwrap_or_default();
        self.authorize(
            &identity,
            &super::rbac::Attrs::resource(
                verb,
                &def.group,
                &def.plural,
                &sub_name,
                target.ns.as_deref().unwrap_or_default(),
                target.name.as_deref().unwrap_or_default(),
            ),
        )?;
        self.counters.inc(verb, &def.plural);
        if let Some(s) = &target.sub {
            self.counters.inc(verb, &format!("{}/{s}", def.plural));
        }
        let (latency, fault, lose) = self.faults.check(verb, &def.plural, target.sub.as_deref());
        if lose {
            // Served in full, answered with nothing (see FaultRule::lost_response).
            let _ = LOSE_RESPONSE.try_with(|l| l.set(true));
        }
        if let Some(l) = latency {
            tokio::time::sleep(l).await;
        }
        if let Some(e) = fault {
            return Err(e);
        }
        if let Some(sp) =
            super::auth_hooks::special(&def, &target.ns, &target.name, &target.sub, verb)?
        {
            let ct = req
                .headers()
                .get(header::CONTENT_TYPE)
                .and_then(|h| h.to_str().ok())
                .unwrap_or("application/json")
                .to_string();
            let body = read_body(req).await?;
            let v = if body.is_empty() {
                json!({})
            } else {
                parse_obj(&body, &ct, &mut WriteOpts::default())?
            };
            return super::auth_hooks::serve(self, &identity, sp, v)
                .map(|v| value_response(201, &v));
        }
        if let Some(s) = &target.sub
            && !(s == "status" && def.status)
            && !super::auth_hooks::is_status_like(&def, s)
        {
            return Err(ApiError::not_found(
                &format!("{}/{s}", def.plural),
                &def.group,
                target.name.as_deref().unwrap_or_default(),
            ));
        }
        let status_only = target.sub.is_some();
        let ns = target.ns.clone().unwrap_or_default();
        if def.namespaced && target.ns.is_none() && !matches!(verb, "list" | "watch") {
            return Err(ApiError::not_found(
                &def.plural,
                &def.group,
                target.name.as_deref().unwrap_or_default(),
            ));
        }
        let validation = if matches!(verb, "create" | "update" | "patch") {
            super::field_validation::mode(query.get("fieldValidation").map(String::as_str))?
        } else {
            super::field_validation::Mode::default()
        };
        let mut opts = WriteOpts {
            strict: validation == super::field_validation::Mode::Strict,
            ignore_fields: validation == super::field_validation::Mode::Ignore,
            duplicate_fields: Vec::new(),
            dry_run: query.get("dryRun").is_some_and(|v| v == "All"),
            field_manager: query.get("fieldManager").cloned(),
            user_agent: req
                .headers()
                .get(header::USER_AGENT)
                .map(|h| String::from_utf8_lossy(h.as_bytes()).into_owned()),
            force: query.get("force").is_some_and(|v| v == "true"),
            identity: Some(identity.clone()),
            subresource: target.sub.clone(),
            authorize_create: None,
        };
        let accept = req
            .headers()
            .get(header::ACCEPT)
            .and_then(|h| h.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let content_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("application/json")
            .to_string();
        let name = target.name.clone().unwrap_or_default();
        // Recorded once answered, with the HTTP status of the answer.
        let tap = |verb: &'static str, body: &Bytes, code: u16| {
            if self.writes.enabled() {
                self.writes.record(WriteRecord {
                    verb,
                    group: def.group.clone(),
                    resource: def.plural.clone(),
                    subresource: target.sub.clone(),
                    content_type: content_type.clone(),
                    namespace: ns.clone(),
                    name: name.clone(),
                    body: body.clone(),
                    code,
                });
            }
        };
        let answered = |out: &Result<_, ApiError>| match out {
            Ok(WriteOut { code, .. }) => *code,
            Err(e) => e.code,
        };
        match verb {
            "get" => {
                let body = self.store.get(&def, &ns, &name)?;
                if super::partial::wanted(&accept) {
                    let v: Value = serde_json::from_slice(&body)
                        .map_err(|e| ApiError::internal(e.to_string()))?;
                    return Ok(value_response(200, &super::partial::object(&v)));
                }
                if accept.contains("as=Table") {
                    let v: Value = serde_json::from_slice(&body)
                        .map_err(|e| ApiError::internal(e.to_string()))?;
                    return Ok(value_response(
                        200,
                        &table(&def, &[v], self.store.current_rv(), None),
                    ));
                }
                Ok(json_response(200, body, &[]))
            }
            "list" => {
                let ls =
                    LabelSelector::parse(query.get("labelSelector").map_or("", String::as_str))?;
                let fs = field_selector(&self.store, &def, &query)?;
                let limit = query.get("limit").and_then(|l| l.parse().ok());
                let (body, _) = self.store.list(
                    &def,
                    target.ns.as_deref(),
                    &ls,
                    &fs,
                    limit,
                    query.get("continue").map(String::as_str),
                )?;
                if super::partial::wanted(&accept) {
                    return Ok(value_response(200, &super::partial::list(&body)));
                }
                if accept.contains("as=Table") {
                    let v: Value = serde_json::from_slice(&body)
                        .map_err(|e| ApiError::internal(e.to_string()))?;
                    let items = v
                        .get("items")
                        .and_then(Value::as_array)
                        .cloned()
                        .unwrap_or_default();
                    let cont = v
                        .pointer("/metadata/continue")
                        .and_then(Value::as_str)
                        .map(str::to_string);
                    return Ok(value_response(
                        200,
                        &table(&def, &items, self.store.current_rv(), cont),
                    ));
                }
                Ok(json_response(200, body, &[]))
            }
            "watch" => self.watch(def, target.ns, &query, super::partial::wanted(&accept)),
            "create" => {
                let body = read_body(req).await?;
                let out = parse_obj(&body, &content_type, &mut opts)
                    .and_then(|obj| self.store.create(&def, &ns, obj, &opts));
                tap("create", &body, answered(&out));
                let out = out?;
                Ok(json_response(out.code, out.body, &out.warnings))
            }
            "update" => {
                let body = read_body(req).await?;
                let out = parse_obj(&body, &content_type, &mut opts)
                    .and_then(|obj| self.store.update(&def, &ns, &name, status_only, obj, &opts));
                tap("update", &body, answered(&out));
                let out = out?;
                Ok(json_response(out.code, out.body, &out.warnings))
            }
            "patch" => {
                let body = read_body(req).await?;
                if content_type.starts_with("application/apply-patch") && target.sub.is_none() {
                    // An apply that creates its object needs `create` too (checked by the store
                    // when the object turns out to be missing, recorded per user).
                    let server = Arc::clone(self);
                    let id = identity.clone();
                    let attrs = super::rbac::Attrs::resource(
                        "create",
                        &def.group,
                        &def.plural,
                        "",
                        target.ns.as_deref().unwrap_or_default(),
                        &name,
                    );
                    opts.authorize_create = Some(super::store::CreateCheck(Arc::new(move || {
                        server.authorize(&id, &attrs)
                    })));
                }
                let out =
                    self.store
                        .patch(&def, &ns, &name, status_only, &content_type, &body, &opts);
                tap("patch", &body, answered(&out));
                let out = out?;
                Ok(json_response(out.code, out.body, &out.warnings))
            }
            "delete" => {
                let body = read_body(req).await?;
                let opts_v: Value = if body.is_empty() {
                    json!({})
                } else {
                    serde_json::from_slice(&body).unwrap_or(json!({}))
                };
                let out = self.store.delete(&def, &ns, &name, &opts_v, opts.dry_run)?;
                Ok(json_response(200, out, &[]))
            }
            _ => {
                let ls =
                    LabelSelector::parse(query.get("labelSelector").map_or("", String::as_str))?;
                let fs = field_selector(&self.store, &def, &query)?;
                let mut items = Vec::new();
                for (n_ns, n) in self.store.names(&def, target.ns.as_deref(), &ls, &fs) {
                    if let Ok(b) = self.store.delete(&def, &n_ns, &n, &json!({}), opts.dry_run) {
                        items.push(serde_json::from_slice::<Value>(&b).unwrap_or(Value::Null));
                    }
                }
                Ok(value_response(
                    200,
                    &json!({"kind": format!("{}List", def.kind), "apiVersion": def.api_version(), "metadata": {"resourceVersion": self.store.current_rv().to_string()}, "items": items}),
                ))
            }
        }
    }

    fn parse_target(&self, segs: &[&str]) -> Result<Target, ApiError> {
        let (group, version, rest) = match segs {
            ["api", v, rest @ ..] => ("", *v, rest),
            ["apis", g, v, rest @ ..] => (*g, *v, rest),
            _ => {
                return Err(ApiError::new(
                    404,
                    "NotFound",
                    "the server could not find the requested resource",
                ));
            }
        };
        let (ns, rest) = match rest {
            ["namespaces", ns, r, more @ ..]
                if !(group.is_empty()
                    && matches!(*r, "status" | "finalize")
                    && more.is_empty()) =>
            {
                (Some(ns.to_string()), {
                    let mut v = vec![*r];
                    v.extend_from_slice(more);
                    v
                })
            }
            _ => (None, rest.to_vec()),
        };
        let (plural, name, sub) = match rest.as_slice() {
            [p] => (*p, None, None),
            [p, n] => (*p, Some(n.to_string()), None),
            [p, n, s] => (*p, Some(n.to_string()), Some(s.to_string())),
            _ => {
                return Err(ApiError::new(
                    404,
                    "NotFound",
                    "the server could not find the requested resource",
                ));
            }
        };
        let def = self.store.lookup(group, version, plural).ok_or_else(|| ApiError::new(404, "NotFound", format!("the server could not find the requested resource (no {plural} in {group}/{version})")))?;
        if !def.namespaced && ns.is_some() {
            return Err(ApiError::new(
                404,
                "NotFound",
                format!(
                    "the server could not find the requested resource ({} is cluster-scoped)",
                    def.plural
                ),
            ));
        }
        Ok(Target { def, ns, name, sub })
    }

    fn watch(
        &self,
        def: Arc<ResourceDef>,
        ns: Option<String>,
        q: &HashMap<String, String>,
        metadata_only: bool,
    ) -> Result<Response<Body>, ApiError> {
        let ls = LabelSelector::parse(q.get("labelSelector").map_or("", String::as_str))?;
        let fs = field_selector(&self.store, &def, q)?;
        let bookmarks = q.get("allowWatchBookmarks").is_some_and(|v| v == "true");
        let send_initial = q.get("sendInitialEvents").is_some_and(|v| v == "true");
        let timeout = q
            .get("timeoutSeconds")
            .and_then(|t| t.parse::<u64>().ok())
            .map_or(Duration::from_secs(3600), Duration::from_secs);
        let rv_param: Option<u64> = match q.get("resourceVersion").map(String::as_str) {
            None | Some("") => None,
            Some(s) => Some(s.parse().map_err(|_| {
                ApiError::bad_request(format!(
                    "invalid resourceVersion {s:?}: must be an unsigned integer"
                ))
            })?),
        };
        let filter = Filter {
            ns: ns.filter(|_| def.namespaced),
            ls,
            fs,
        };
        let mut lines: Vec<Bytes> = Vec::new();
        let (rx, start_rv) = {
            let inner = def.coll.inner.read();
            let rx = def.coll.tx.subscribe();
            let now = self.store.current_rv();
            match rv_param {
                Some(r) if r != 0 && !send_initial => {
                    if r < inner.compacted {
                        let e = ApiError::expired(r, inner.compacted);
                        let line = watch_line(
                            "ERROR",
                            &serde_json::to_vec(&e.to_status()).unwrap_or_default(),
                        );
                        return Ok(stream_response(vec![line], None));
                    }
                    for h in inner.history.iter().filter(|e| e.rv > r) {
                        if let Some(l) = filter.replay(&def, h) {
                            lines.push(l);
                        }
                    }
                    (rx, r.max(inner.history.back().map_or(0, |e| e.rv)))
                }
                _ => {
                    for ((ons, _), s) in inner.objects.iter() {
                        if filter.ns.as_ref().is_some_and(|n| n != ons)
                            || !filter.ls.matches(&s.obj)
                            || !filter.fs.matches(&s.obj)
                        {
                            continue;
                        }
                        lines.push(watch_line(
                            "ADDED",
                            &Store::render_for(&def, &s.obj, &s.bytes),
                        ));
                    }
                    (rx, now)
                }
            }
        };
        if send_initial {
            lines.push(bookmark_line(&def, start_rv, true));
        }
        let (tx, body_rx) = mpsc::channel::<Bytes>(1024);
        let task = WatchTask {
            store: self.store.clone(),
            def,
            filter,
            rx,
            last: start_rv,
            bookmarks,
            interval: self.bookmark_interval,
            timeout,
            drop_rx: self.faults.0.drop_tx.subscribe(),
            faults: self.faults.clone(),
        };
        tokio::spawn(task.run(lines, tx));
        let body_rx = if metadata_only {
            super::partial::watch(body_rx)
        } else {
            body_rx
        };
        Ok(stream_response(Vec::new(), Some(body_rx)))
    }

    fn group_list(&self) -> Value {
        let reg = self.store.registry.read();
        let groups: Vec<Value> = reg
            .group_order
            .iter()
            .filter(|g| !g.is_empty())
            .filter_map(|g| group_doc(&reg, g))
            .collect();
        json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
    }

    fn group(&self, g: &str) -> Result<Value, ApiError> {
        let reg = self.store.registry.read();
        group_doc(&reg, g).ok_or_else(|| {
            ApiError::new(
                404,
                "NotFound",
                "the server could not find the requested resource",
            )
        })
    }

    fn resource_list(&self, g: &str, v: &str) -> Result<Value, ApiError> {
        let reg = self.store.registry.read();
        let m = reg
            .gvs
            .get(&(g.to_string(), v.to_string()))
            .ok_or_else(|| {
                ApiError::new(
                    404,
                    "NotFound",
                    "the server could not find the requested resource",
                )
            })?;
        let mut resources = Vec::new();
        for d in m.values() {
            let mut r = json!({
                "name": d.plural, "singularName": d.singular, "namespaced": d.namespaced, "kind": d.kind,
                "verbs": ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"],
            });
            if !d.short_names.is_empty() {
                r["shortNames"] = json!(d.short_names);
            }
            if !d.categories.is_empty() {
                r["categories"] = json!(d.categories);
            }
            resources.push(r);
            if d.status {
                resources.push(json!({"name": format!("{}/status", d.plural), "singularName": "", "namespaced": d.namespaced, "kind": d.kind, "verbs": ["get", "patch", "update"]}));
            }
            for (sub, kind, verbs) in super::auth_hooks::extra_subresources(d) {
                resources.push(json!({"name": format!("{}/{sub}", d.plural), "singularName": "", "namespaced": d.namespaced, "kind": kind, "verbs": verbs}));
            }
        }
        let gv = if g.is_empty() {
            v.to_string()
        } else {
            format!("{g}/{v}")
        };
        Ok(
            json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}),
        )
    }

    fn openapi_root(&self) -> Value {
        let reg = self.store.registry.read();
        let mut paths = serde_json::Map::new();
        for (g, v) in reg.gvs.keys() {
            let key = if g.is_empty() {
                format!("api/{v}")
            } else {
                format!("apis/{g}/{v}")
            };
            let doc = openapi_doc(&reg, g, v);
            let hash = {
                use std::hash::{Hash, Hasher};
                let mut h = std::collections::hash_map::DefaultHasher::new();
                doc.to_string().hash(&mut h);
                format!("{:016X}", h.finish())
            };
            paths.insert(
                key.clone(),
                json!({"serverRelativeURL": format!("/openapi/v3/{key}?hash={hash}")}),
            );
        }
        json!({"paths": paths})
    }

    fn openapi_gv(&self, rest: &[&str]) -> Result<Value, ApiError> {
        let (g, v) = match rest {
            ["api", v] => ("", *v),
            ["apis", g, v] => (*g, *v),
            _ => return Err(ApiError::new(404, "NotFound", "no such OpenAPI document")),
        };
        let reg = self.store.registry.read();
        if !reg.gvs.contains_key(&(g.to_string(), v.to_string())) {
            return Err(ApiError::new(
                404,
                "NotFound",
                format!("no OpenAPI document for {g}/{v}"),
            ));
        }
        Ok(openapi_doc(&reg, g, v))
    }
}

fn group_doc(reg: &super::store::Registry, g: &str) -> Option<Value> {
    let versions: Vec<Value> = reg
        .gvs
        .keys()
        .filter(|(gg, _)| gg == g)
        .map(|(_, v)| json!({"groupVersion": format!("{g}/{v}"), "version": v}))
        .collect();
    if versions.is_empty() {
        return None;
    }
    let pref = reg.preferred.get(g).cloned().unwrap_or_default();
    Some(
        json!({"kind": "APIGroup", "apiVersion": "v1", "name": g, "versions": versions, "preferredVersion": {"groupVersion": format!("{g}/{pref}"), "version": pref}}),
    )
}

/// Reverse-DNS schema name as the API server names definitions (`io.cert-manager.v1.CertificateRequest`).
fn schema_name(d: &ResourceDef) -> String {
    if d.group.is_empty() {
        return format!("io.k8s.api.core.{}.{}", d.version, d.kind);
    }
    let rev: Vec<&str> = d.group.split('.').rev().collect();
    format!("{}.{}.{}", rev.join("."), d.version, d.kind)
}

fn openapi_doc(reg: &super::store::Registry, g: &str, v: &str) -> Value {
    let mut paths = serde_json::Map::new();
    let mut schemas = serde_json::Map::new();
    if let Some(m) = reg.gvs.get(&(g.to_string(), v.to_string())) {
        for d in m.values() {
            let gvk = json!({"group": d.group, "version": d.version, "kind": d.kind});
            let prefix = if g.is_empty() {
                format!("/api/{v}")
            } else {
                format!("/apis/{g}/{v}")
            };
            let coll = if d.namespaced {
                format!("{prefix}/namespaces/{{namespace}}/{}", d.plural)
            } else {
                format!("{prefix}/{}", d.plural)
            };
            let sref = json!({"$ref": format!("#/components/schemas/{}", schema_name(d))});
            let ok = json!({"200": {"description": "OK", "content": {"application/json": {"schema": sref}}}});
            let fv = json!({"name": "fieldValidation", "in": "query", "schema": {"type": "string", "uniqueItems": true}});
            let fm = json!({"name": "fieldManager", "in": "query", "schema": {"type": "string", "uniqueItems": true}});
            let op = |id: &str| json!({"operationId": format!("{id}{}", d.kind), "x-kubernetes-group-version-kind": gvk, "parameters": [fv, fm], "responses": ok});
            paths.insert(
                coll.clone(),
                json!({"get": op("list"), "post": op("create")}),
            );
            paths.insert(format!("{coll}/{{name}}"), json!({"get": op("read"), "put": op("replace"), "patch": op("patch"), "delete": op("delete")}));
            if d.status {
                paths.insert(format!("{coll}/{{name}}/status"), json!({"get": op("readStatus"), "put": op("replaceStatus"), "patch": op("patchStatus")}));
            }
            let mut s = d.schema.as_deref().cloned().unwrap_or_else(
                || json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true}),
            );
            s["x-kubernetes-group-version-kind"] = json!([gvk]);
            schemas.insert(schema_name(d), s);
        }
    }
    json!({"openapi": "3.0.0", "info": {"title": "Kubernetes", "version": "v1.32.0"}, "paths": paths, "components": {"schemas": schemas}})
}

fn age(ts: Option<&str>) -> String {
    let Some(t) = ts.and_then(|t| t.parse::<jiff::Timestamp>().ok()) else {
        return "<unknown>".into();
    };
    let secs = jiff::Timestamp::now().duration_since(t).as_secs().max(0);
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}

/// Evaluate the simple JSONPath forms printer columns use: `.a.b` and `.a.list[?(@.k=="v")].f`.
fn json_path(obj: &Value, path: &str) -> Value {
    let mut cur = obj.clone();
    let mut rest = path.trim_start_matches('.');
    while !rest.is_empty() {
        let (seg, tail) = match rest.find(['.', '[']) {
            Some(0) if rest.starts_with('[') => {
                let end = rest.find(']').unwrap_or(rest.len() - 1);
                let filter = &rest[1..end];
                if let Some(f) = filter
                    .strip_prefix("?(@.")
                    .and_then(|f| f.strip_suffix(')'))
                    && let Some((k, v)) = f.split_once("==")
                {
                    // Published CRDs write the filter with spaces (`@.type == "Ready"`).
                    let (k, want) = (k.trim(), v.trim().trim_matches(['"', '\'']));
                    cur = cur
                        .as_array()
                        .and_then(|a| {
                            a.iter()
                                .find(|i| i.get(k).and_then(Value::as_str) == Some(want))
                        })
                        .cloned()
                        .unwrap_or(Value::Null);
                } else if let Ok(i) = filter.parse::<usize>() {
                    cur = cur.get(i).cloned().unwrap_or(Value::Null);
                }
                rest = rest[end + 1..].trim_start_matches('.');
                continue;
            }
            Some(i) => (&rest[..i], rest[i..].trim_start_matches('.')),
            None => (rest, ""),
        };
        cur = cur.get(seg).cloned().unwrap_or(Value::Null);
        rest = tail;
    }
    cur
}

fn table(def: &ResourceDef, items: &[Value], rv: u64, cont: Option<String>) -> Value {
    let mut cols = vec![
        json!({"name": "Name", "type": "string", "format": "name", "description": "Name must be unique within a namespace.", "priority": 0}),
    ];
    for c in &def.printer_columns {
        cols.push(json!({"name": c.get("name"), "type": c.get("type").cloned().unwrap_or(json!("string")), "format": "", "description": c.get("description").cloned().unwrap_or(json!("")), "priority": c.get("priority").cloned().unwrap_or(json!(0))}));
    }
    let has_age = def
        .printer_columns
        .iter()
        .any(|c| c.get("jsonPath").and_then(Value::as_str) == Some(".metadata.creationTimestamp"));
    if !has_age {
        cols.push(json!({"name": "Age", "type": "string", "format": "", "description": "CreationTimestamp", "priority": 0}));
    }
    let rows: Vec<Value> = items
        .iter()
        .map(|o| {
            let mut cells = vec![o.pointer("/metadata/name").cloned().unwrap_or(Value::Null)];
            for c in &def.printer_columns {
                let p = c.get("jsonPath").and_then(Value::as_str).unwrap_or_default();
                let v = json_path(o, p);
                cells.push(if p == ".metadata.creationTimestamp" { json!(age(v.as_str())) } else if v.is_null() { json!("") } else { v });
            }
            if !has_age {
                cells.push(json!(age(o.pointer("/metadata/creationTimestamp").and_then(Value::as_str))));
            }
            json!({"cells": cells, "object": {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": o.get("metadata")}})
        })
        .collect();
    let mut meta = json!({"resourceVersion": rv.to_string()});
    if let Some(c) = cont {
        meta["continue"] = json!(c);
    }
    json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": meta, "columnDefinitions": cols, "rows": rows})
}

/// The request's `fieldSelector`, limited to the labels the resource supports.
fn field_selector(
    store: &Store,
    def: &ResourceDef,
    q: &HashMap<String, String>,
) -> Result<FieldSelector, ApiError> {
    let s = q.get("fieldSelector").map_or("", String::as_str);
    if s.is_empty() {
        return Ok(FieldSelector::default());
    }
    if def.schema.is_some() {
        let selectable = store.selectable_fields(def);
        FieldSelector::parse_for(s, FieldLabels::Custom(&selectable))
    } else {
        let (extra, namespace) = builtin_field_labels(&def.group, &def.plural);
        FieldSelector::parse_for(s, FieldLabels::Builtin { extra, namespace })
    }
}

async fn read_body(req: Request<Incoming>) -> Result<Bytes, ApiError> {
    req.into_body()
        .collect()
        .await
        .map(|c| c.to_bytes())
        .map_err(|e| ApiError::bad_request(format!("reading the request body: {e}")))
}

/// Decode a create/update body (JSON, YAML or Kubernetes protobuf); duplicate JSON fields go to
/// `opts` for `fieldValidation`.
fn parse_obj(body: &[u8], ct: &str, opts: &mut WriteOpts) -> Result<Value, ApiError> {
    if super::protobuf::is_protobuf(ct) {
        super::protobuf::decode(body)
    } else if ct.contains("yaml") {
        let (v, dups) = super::field_validation::parse_yaml(body)
            .map_err(|e| ApiError::bad_request(format!("error decoding YAML body: {e}")))?;
        opts.duplicate_fields = dups;
        Ok(v)
    } else {
        let (v, dups) = super::field_validation::parse_json(body)
            .map_err(|e| ApiError::bad_request(format!("error decoding JSON body: {e}")))?;
        opts.duplicate_fields = dups;
        Ok(v)
    }
}

fn bookmark_line(def: &ResourceDef, rv: u64, initial_end: bool) -> Bytes {
    let mut meta = json!({"resourceVersion": rv.to_string(), "creationTimestamp": null});
    if initial_end {
        meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
    }
    let obj = json!({"kind": def.kind, "apiVersion": def.api_version(), "metadata": meta});
    watch_line("BOOKMARK", &serde_json::to_vec(&obj).unwrap_or_default())
}

fn stream_response(initial: Vec<Bytes>, rx: Option<mpsc::Receiver<Bytes>>) -> Response<Body> {
    let mut initial = std::collections::VecDeque::from(initial);
    let mut rx = rx;
    let stream = futures::stream::poll_fn(move |cx| {
        if let Some(b) = initial.pop_front() {
            return std::task::Poll::Ready(Some(Ok::<_, Infallible>(Frame::data(b))));
        }
        match rx.as_mut() {
            Some(r) => r.poll_recv(cx).map(|o| o.map(|b| Ok(Frame::data(b)))),
            None => std::task::Poll::Ready(None),
        }
    });
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CACHE_CONTROL, "no-cache, private")
        .body(BodyExt::boxed(StreamBody::new(stream)))
        .unwrap_or_else(|_| Response::new(full(Bytes::new())))
}

struct Filter {
    ns: Option<String>,
    ls: LabelSelector,
    fs: FieldSelector,
}

impl Filter {
    /// The line to replay for a retained event (no selector transitions: the old state is not kept).
    fn replay(&self, def: &ResourceDef, h: &Hist) -> Option<Bytes> {
        if self.ns.as_ref().is_some_and(|n| *n != h.namespace) {
            return None;
        }
        let same_version = def.serves_stored_form();
        if self.ls.is_empty() && self.fs.is_empty() && same_version {
            return Some(h.line.clone());
        }
        let obj: Value = serde_json::from_slice(&h.bytes).ok()?;
        if !(self.ls.matches(&obj) && self.fs.matches(&obj)) {
            return None;
        }
        Some(watch_line(
            h.etype.as_str(),
            &Store::render_for(def, &obj, &h.bytes),
        ))
    }

    /// The line to send for an event, with ADDED/DELETED synthesized when the object enters or leaves the selection.
    fn line(&self, def: &ResourceDef, ev: &Event) -> Option<Bytes> {
        if self.ns.as_ref().is_some_and(|n| *n != ev.namespace) {
            return None;
        }
        let same_version = def.serves_stored_form();
        if self.ls.is_empty() && self.fs.is_empty() {
            return Some(if same_version {
                ev.line.clone()
            } else {
                watch_line(
                    ev.etype.as_str(),
                    &Store::render_for(def, &ev.obj, &ev.bytes),
                )
            });
        }
        let m = |o: &Value| self.ls.matches(o) && self.fs.matches(o);
        let now = m(&ev.obj);
        let before = ev.old.as_deref().is_some_and(m);
        let t = match ev.etype {
            EventType::Added if now => EventType::Added,
            EventType::Modified if now && before => EventType::Modified,
            EventType::Modified if now => EventType::Added,
            EventType::Modified if before => EventType::Deleted,
            EventType::Deleted if now || before => EventType::Deleted,
            _ => return None,
        };
        if t == ev.etype && same_version {
            Some(ev.line.clone())
        } else {
            Some(watch_line(
                t.as_str(),
                &Store::render_for(def, &ev.obj, &ev.bytes),
            ))
        }
    }
}

struct WatchTask {
    store: Arc<Store>,
    def: Arc<ResourceDef>,
    filter: Filter,
    rx: broadcast::Receiver<Arc<Event>>,
    last: u64,
    bookmarks: bool,
    interval: Duration,
    timeout: Duration,
    drop_rx: tokio::sync::watch::Receiver<u64>,
    faults: Faults,
}

impl WatchTask {
    async fn run(mut self, initial: Vec<Bytes>, tx: mpsc::Sender<Bytes>) {
        for l in initial {
            if tx.send(l).await.is_err() {
                return;
            }
        }
        let deadline = tokio::time::sleep(self.timeout);
        tokio::pin!(deadline);
        let mut tick =
            tokio::time::interval_at(tokio::time::Instant::now() + self.interval, self.interval);
        self.drop_rx.borrow_and_update();
        loop {
            tokio::select! {
                r = self.rx.recv() => match r {
                    Ok(ev) => {
                        if ev.rv <= self.last {
                            continue;
                        }
                        self.last = ev.rv;
                        if let Some(delay) = self.faults.watch_delay(&self.def.plural) {
                            tokio::time::sleep_until((ev.at + delay).into()).await;
                        }
                        if let Some(line) = self.filter.line(&self.def, &ev)
                            && tx.send(line).await.is_err()
                        {
                            return;
                        }
                    }
                    // A watcher too slow for the fan-out is closed, as the real server does; clients re-watch.
                    Err(e) => {
                        if matches!(e, broadcast::error::RecvError::Lagged(_)) {
                            self.store.watches_closed_behind.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        }
                        tracing::debug!(resource = %self.def.plural, last = self.last, error = %e, "watch closed");
                        return;
                    }
                },
                _ = tick.tick(), if self.bookmarks => {
                    // When every change of this resource has been delivered, the bookmark can carry the
                    // global resourceVersion (as a real server does), so a resumed watch starts fresh.
                    let rv = {
                        let inner = self.def.coll.inner.read();
                        let latest = inner.history.back().map_or(inner.compacted, |h| h.rv);
                        if self.last >= latest { self.store.current_rv() } else { self.last }
                    };
                    self.last = self.last.max(rv);
                    if tx.send(bookmark_line(&self.def, self.last, false)).await.is_err() {
                        return;
                    }
                }
                _ = &mut deadline => return,
                _ = self.drop_rx.changed() => return,
                _ = tx.closed() => return,
            }
        }
    }
}
