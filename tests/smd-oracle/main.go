// Command smd-oracle is this project's test oracle for server-side apply: it runs sequences of
// apply and update operations through sigs.k8s.io/structured-merge-diff (the library
// kube-apiserver uses) and prints what happened, so that kube-sim can be compared with it.
//
// Protocol: one JSON request per stdin line, one JSON answer per stdout line (the process stays up
// for as many requests as the caller sends). A request:
//
//	{"apiVersion": "cert-manager.io/v1", "kind": "CertificateRequest",
//	 "schema": <the CRD version's openAPIV3Schema>, "statusSubresource": true,
//	 "ops": [{"manager": "m", "subresource": "" | "status", "operation": "apply" | "merge",
//	          "force": false, "body": {...}}]}
//
// "apply" is a server-side apply of body; "merge" is a JSON merge patch (an Update operation for
// field ownership). The answer has one step per operation: the object after it, every manager's
// owned field set (as SMD paths and in SMD's FieldsV1 encoding), and the error when the operation failed (the object and the
// managers are then unchanged).
//
// Around SMD it reproduces the thin layers of kube-apiserver that decide the outcome of these
// operations: the OpenAPI-to-SMD schema conversion (ObjectMeta added at the root), the manager
// identifiers (manager, operation, subresource; the API version only for updaters), the fields a
// subresource may not change ("reset fields": status on the main resource of a CRD with a status
// subresource, spec on /status) and the strategies that restore them, the server-managed metadata
// fields no manager owns, and the error texts and status codes the server answers with.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"

	"sigs.k8s.io/structured-merge-diff/v4/fieldpath"
	"sigs.k8s.io/structured-merge-diff/v4/merge"
	"sigs.k8s.io/structured-merge-diff/v4/schema"
	"sigs.k8s.io/structured-merge-diff/v4/typed"
)

type request struct {
	APIVersion        string                 `json:"apiVersion"`
	Kind              string                 `json:"kind"`
	Schema            map[string]interface{} `json:"schema"`
	StatusSubresource bool                   `json:"statusSubresource"`
	Ops               []op                   `json:"ops"`
}

type op struct {
	Manager     string                 `json:"manager"`
	Subresource string                 `json:"subresource"`
	Operation   string                 `json:"operation"`
	Force       bool                   `json:"force"`
	Body        map[string]interface{} `json:"body"`
}

type managerOut struct {
	Manager     string   `json:"manager"`
	Operation   string   `json:"operation"`
	Subresource string   `json:"subresource"`
	APIVersion  string   `json:"apiVersion,omitempty"`
	Fields      []string `json:"fields"`
	// FieldsV1 is the set in SMD's own encoding (Set.ToJSON), what kube-apiserver stores as
	// the managedFields entry's fieldsV1.
	FieldsV1 json.RawMessage `json:"fieldsV1"`
}

type conflictOut struct {
	Manager string `json:"manager"`
	Field   string `json:"field"`
}

type errorOut struct {
	Code int `json:"code"`
	// Message is what kube-apiserver answers (Status.message).
	Message string `json:"message"`
	// SMD is the library's own error text.
	SMD       string        `json:"smd"`
	Conflicts []conflictOut `json:"conflicts,omitempty"`
}

type stepOut struct {
	Object   interface{}  `json:"object"`
	Managers []managerOut `json:"managers"`
	Error    *errorOut    `json:"error,omitempty"`
}

type answer struct {
	Steps []stepOut `json:"steps,omitempty"`
	// Fatal is set when the request itself could not be run (bad schema, bad operation).
	Fatal string `json:"fatal,omitempty"`
}

// identity is the converter for a single served version.
type identity struct{}

func (identity) Convert(v *typed.TypedValue, _ fieldpath.APIVersion) (*typed.TypedValue, error) {
	return v, nil
}
func (identity) IsMissingVersionError(error) bool { return false }

// managerID mirrors a managedFields entry without its time and fields, the way the API server
// keys managers: appliers are one manager whatever API version they use.
type managerID struct {
	Manager     string `json:"manager,omitempty"`
	Operation   string `json:"operation,omitempty"`
	APIVersion  string `json:"apiVersion,omitempty"`
	Subresource string `json:"subresource,omitempty"`
}

func (m managerID) key() string {
	b, _ := json.Marshal(m)
	return string(b)
}

func parseID(k string) managerID {
	var m managerID
	_ = json.Unmarshal([]byte(k), &m)
	return m
}

// printed is how the API server names a manager in conflict messages.
func (m managerID) printed() string {
	s := fmt.Sprintf("%q", m.Manager)
	if m.Subresource != "" {
		s = fmt.Sprintf("%s with subresource %q", s, m.Subresource)
	}
	if m.Operation == "Update" {
		s = fmt.Sprintf("%s using %v", s, m.APIVersion)
	}
	return s
}

// serverOwned are the paths no manager keeps (the API server strips them after every operation).
var serverOwned = fieldpath.NewSet(
	fieldpath.MakePathOrDie("apiVersion"),
	fieldpath.MakePathOrDie("kind"),
	fieldpath.MakePathOrDie("metadata"),
	fieldpath.MakePathOrDie("metadata", "name"),
	fieldpath.MakePathOrDie("metadata", "namespace"),
	fieldpath.MakePathOrDie("metadata", "creationTimestamp"),
	fieldpath.MakePathOrDie("metadata", "selfLink"),
	fieldpath.MakePathOrDie("metadata", "uid"),
	fieldpath.MakePathOrDie("metadata", "clusterName"),
	fieldpath.MakePathOrDie("metadata", "generation"),
	fieldpath.MakePathOrDie("metadata", "managedFields"),
	fieldpath.MakePathOrDie("metadata", "resourceVersion"),
)

func main() {
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 64<<20)
	out := bufio.NewWriter(os.Stdout)
	enc := json.NewEncoder(out)
	for in.Scan() {
		line := strings.TrimSpace(in.Text())
		if line == "" {
			continue
		}
		var req request
		var ans answer
		if err := json.Unmarshal([]byte(line), &req); err != nil {
			ans.Fatal = fmt.Sprintf("request is not valid JSON: %v", err)
		} else {
			ans = run(&req)
		}
		if err := enc.Encode(ans); err != nil {
			fmt.Fprintf(os.Stderr, "smd-oracle: writing the answer: %v\n", err)
			os.Exit(1)
		}
		if err := out.Flush(); err != nil {
			fmt.Fprintf(os.Stderr, "smd-oracle: writing the answer: %v\n", err)
			os.Exit(1)
		}
	}
	if err := in.Err(); err != nil {
		fmt.Fprintf(os.Stderr, "smd-oracle: reading requests: %v\n", err)
		os.Exit(1)
	}
}

func run(req *request) (ans answer) {
	defer func() {
		if r := recover(); r != nil {
			ans = answer{Fatal: fmt.Sprintf("structured-merge-diff panicked: %v", r)}
		}
	}()
	sc, err := convertSchema(req.Schema)
	if err != nil {
		return answer{Fatal: err.Error()}
	}
	root := schema.TypeRef{NamedType: strPtr("root")}
	gvk := gvkString(req.APIVersion, req.Kind)
	version := fieldpath.APIVersion(req.APIVersion)
	var live map[string]interface{}
	managers := fieldpath.ManagedFields{}
	for i, o := range req.Ops {
		step, newLive, newManagers, fatal := doOp(sc, root, gvk, version, req, o, live, managers)
		if fatal != "" {
			return answer{Fatal: fmt.Sprintf("operation %d: %s", i, fatal)}
		}
		if step.Error == nil {
			live, managers = newLive, newManagers
		}
		step.Object = live
		step.Managers = listManagers(managers)
		ans.Steps = append(ans.Steps, step)
	}
	return ans
}

func doOp(sc *smdSchema, root schema.TypeRef, gvk string, version fieldpath.APIVersion, req *request, o op, live map[string]interface{}, managers fieldpath.ManagedFields) (stepOut, map[string]interface{}, fieldpath.ManagedFields, string) {
	var step stepOut
	if o.Subresource != "" && o.Subresource != "status" {
		return step, nil, nil, fmt.Sprintf("unknown subresource %q", o.Subresource)
	}
	if live == nil && (o.Subresource != "" || o.Operation != "apply") {
		step.Error = &errorOut{Code: 404, Message: "not found", SMD: ""}
		return step, nil, nil, ""
	}
	reset := fieldpath.NewSet()
	if o.Subresource == "status" {
		reset.Insert(fieldpath.MakePathOrDie("spec"))
	} else if req.StatusSubresource {
		reset.Insert(fieldpath.MakePathOrDie("status"))
	}
	updater := merge.Updater{
		Converter:     identity{},
		IgnoredFields: map[fieldpath.APIVersion]*fieldpath.Set{version: reset},
	}
	// Work on copies: a failed operation leaves the state as it was.
	mgrs := fieldpath.ManagedFields{}
	for k, v := range managers {
		mgrs[k] = v
	}
	liveObj := map[string]interface{}{}
	if live != nil {
		liveObj = deepCopy(live).(map[string]interface{})
	}
	liveTyped, err := sc.parse(root, liveObj)
	if err != nil {
		return step, nil, nil, fmt.Sprintf("the live object does not convert: %v", err)
	}
	var id managerID
	var result *typed.TypedValue
	switch o.Operation {
	case "apply":
		id = managerID{Manager: o.Manager, Operation: "Apply", Subresource: o.Subresource}
		// kube-apiserver's skipNonAppliedManager: an existing object nobody manages first gets a
		// "before-first-apply" updater owning what it holds (compared with the empty object).
		if live != nil && len(mgrs) == 0 {
			empty, err := sc.parse(root, map[string]interface{}{"apiVersion": req.APIVersion, "kind": req.Kind})
			if err != nil {
				return step, nil, nil, fmt.Sprintf("the empty object does not convert: %v", err)
			}
			first := managerID{Manager: "before-first-apply", Operation: "Update", APIVersion: req.APIVersion, Subresource: o.Subresource}
			_, m, err := updater.Update(empty, liveTyped, version, mgrs, first.key())
			if err != nil {
				return step, nil, nil, fmt.Sprintf("before-first-apply: %v", err)
			}
			mgrs = stripServerOwned(m, first.key())
			// What the conflict recovery starts from (Apply changes mgrs in place).
			managers = fieldpath.ManagedFields{}
			for k, v := range mgrs {
				managers[k] = v
			}
		}
		patchTyped, err := sc.parse(root, deepCopy(o.Body))
		if err != nil {
			step.Error = &errorOut{
				Code:    500,
				Message: fmt.Sprintf("failed to create typed patch object (%s; %s): %v", nsName(o.Body), gvk, err),
				SMD:     err.Error(),
			}
			return step, nil, nil, ""
		}
		res, m, err := updater.Apply(liveTyped, patchTyped, version, mgrs, id.key(), o.Force)
		if err != nil {
			if cs, ok := err.(merge.Conflicts); ok {
				// The conflicts exactly as SMD reports them (see recoverConflicts for what its
				// paths may look like); the recovered true set is a consistency check.
				if _, ferr := recoverConflicts(&updater, liveTyped, patchTyped, version, managers, id.key(), cs); ferr != "" {
					return step, nil, nil, ferr
				}
				step.Error = conflictError(cs)
				return step, nil, nil, ""
			}
			step.Error = &errorOut{Code: 500, Message: err.Error(), SMD: err.Error()}
			return step, nil, nil, ""
		}
		mgrs = m
		result = res
		if result == nil {
			result = liveTyped
		}
	case "merge":
		id = managerID{Manager: o.Manager, Operation: "Update", APIVersion: req.APIVersion, Subresource: o.Subresource}
		merged := mergePatch(deepCopy(liveObj), deepCopy(o.Body)).(map[string]interface{})
		newTyped, err := sc.parse(root, merged)
		if err != nil {
			step.Error = &errorOut{
				Code:    500,
				Message: fmt.Sprintf("failed to create typed new object (%s): %v", gvk, err),
				SMD:     err.Error(),
			}
			return step, nil, nil, ""
		}
		if len(mgrs) == 0 {
			// kube-apiserver's skipNonAppliedManager: an existing object nobody manages stays
			// untracked by updates.
			result = newTyped
			break
		}
		res, m, err := updater.Update(liveTyped, newTyped, version, mgrs, id.key())
		if err != nil {
			step.Error = &errorOut{Code: 500, Message: err.Error(), SMD: err.Error()}
			return step, nil, nil, ""
		}
		mgrs = m
		result = res
	default:
		return step, nil, nil, fmt.Sprintf("unknown operation %q (apply or merge)", o.Operation)
	}
	obj, ok := result.AsValue().Unstructured().(map[string]interface{})
	if !ok {
		return step, nil, nil, "the result is not an object"
	}
	obj = deepCopy(obj).(map[string]interface{})
	// The strategies: a write through one endpoint keeps what the other endpoint owns.
	switch {
	case live == nil:
		if req.StatusSubresource {
			delete(obj, "status")
		}
	case o.Subresource == "status":
		next := deepCopy(live).(map[string]interface{})
		if st, ok := obj["status"]; ok {
			next["status"] = st
		} else {
			delete(next, "status")
		}
		obj = next
	case req.StatusSubresource:
		if st, ok := live["status"]; ok {
			obj["status"] = deepCopy(st)
		} else {
			delete(obj, "status")
		}
	}
	// A custom resource keeps no null where its schema does not allow one (structural schemas
	// prune them before defaulting): SMD leaves a null where it emptied a map.
	pruneNulls(obj, req.Schema)
	// ObjectMeta is a typed struct whose fields are all omitempty: a null field is no field.
	if meta, ok := obj["metadata"].(map[string]interface{}); ok {
		for k, v := range meta {
			if v == nil {
				delete(meta, k)
			}
		}
	}
	mgrs = stripServerOwned(mgrs, id.key())
	return step, obj, mgrs, ""
}

// stripServerOwned removes the server-managed metadata fields from one manager's set (and the
// manager when nothing is left), as kube-apiserver's stripMetaManager does after each operation.
func stripServerOwned(mgrs fieldpath.ManagedFields, key string) fieldpath.ManagedFields {
	if vs, ok := mgrs[key]; ok {
		s := vs.Set().Difference(serverOwned)
		if s.Empty() {
			delete(mgrs, key)
		} else {
			mgrs[key] = fieldpath.NewVersionedSet(s, vs.APIVersion(), vs.Applied())
		}
	}
	return mgrs
}

func conflictError(cs merge.Conflicts) *errorOut {
	e := &errorOut{Code: 409, SMD: cs.Error()}
	for _, c := range cs {
		e.Conflicts = append(e.Conflicts, conflictOut{Manager: parseID(c.Manager).printed(), Field: c.Path.String()})
	}
	if len(cs) == 1 {
		e.Message = fmt.Sprintf("Apply failed with 1 conflict: conflict with %v: %v", parseID(cs[0].Manager).printed(), cs[0].Path)
		return e
	}
	byManager := map[string][]fieldpath.Path{}
	for _, c := range cs {
		byManager[c.Manager] = append(byManager[c.Manager], c.Path)
	}
	ids := make([]string, 0, len(byManager))
	for k := range byManager {
		ids = append(ids, k)
	}
	sort.Strings(ids)
	lines := []string{}
	for _, k := range ids {
		lines = append(lines, fmt.Sprintf("conflicts with %v:", parseID(k).printed()))
		for _, p := range byManager[k] {
			lines = append(lines, fmt.Sprintf("- %v", p))
		}
	}
	e.Message = fmt.Sprintf("Apply failed with %d conflicts: %s", len(cs), strings.Join(lines, "\n"))
	return e
}

func listManagers(m fieldpath.ManagedFields) []managerOut {
	out := []managerOut{}
	for k, vs := range m {
		id := parseID(k)
		fields := []string{}
		vs.Set().Iterate(func(p fieldpath.Path) { fields = append(fields, p.String()) })
		sort.Strings(fields)
		raw, err := vs.Set().ToJSON()
		if err != nil {
			raw, _ = json.Marshal(fmt.Sprintf("ToJSON failed: %v", err))
		}
		out = append(out, managerOut{Manager: id.Manager, Operation: id.Operation, Subresource: id.Subresource, APIVersion: id.APIVersion, Fields: fields, FieldsV1: raw})
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Manager != b.Manager {
			return a.Manager < b.Manager
		}
		if a.Operation != b.Operation {
			return a.Operation < b.Operation
		}
		if a.Subresource != b.Subresource {
			return a.Subresource < b.Subresource
		}
		return a.APIVersion < b.APIVersion
	})
	return out
}

func gvkString(apiVersion, kind string) string {
	group, version := "", apiVersion
	if i := strings.Index(apiVersion, "/"); i >= 0 {
		group, version = apiVersion[:i], apiVersion[i+1:]
	}
	return fmt.Sprintf("%s/%s, Kind=%s", group, version, kind)
}

// mergePatch is RFC 7386.
func mergePatch(target, patch interface{}) interface{} {
	p, ok := patch.(map[string]interface{})
	if !ok {
		return patch
	}
	t, ok := target.(map[string]interface{})
	if !ok {
		t = map[string]interface{}{}
	}
	for k, v := range p {
		if v == nil {
			delete(t, k)
			continue
		}
		t[k] = mergePatch(t[k], v)
	}
	return t
}

func deepCopy(v interface{}) interface{} {
	switch x := v.(type) {
	case map[string]interface{}:
		m := make(map[string]interface{}, len(x))
		for k, e := range x {
			m[k] = deepCopy(e)
		}
		return m
	case []interface{}:
		l := make([]interface{}, len(x))
		for i, e := range x {
			l[i] = deepCopy(e)
		}
		return l
	default:
		return v
	}
}

func strPtr(s string) *string { return &s }

// pruneNulls drops object entries whose value is null and whose schema (a property or
// additionalProperties) is not nullable; metadata is left alone.
func pruneNulls(obj map[string]interface{}, sch map[string]interface{}) {
	props, _ := sch["properties"].(map[string]interface{})
	addl, _ := sch["additionalProperties"].(map[string]interface{})
	for k, v := range obj {
		sub, _ := props[k].(map[string]interface{})
		if sub == nil {
			sub = addl
		}
		if sub == nil {
			continue
		}
		if v == nil {
			if nullable, _ := sub["nullable"].(bool); !nullable {
				delete(obj, k)
			}
			continue
		}
		switch x := v.(type) {
		case map[string]interface{}:
			pruneNulls(x, sub)
		case []interface{}:
			items, _ := sub["items"].(map[string]interface{})
			for _, it := range x {
				if m, ok := it.(map[string]interface{}); ok && items != nil {
					pruneNulls(m, items)
				}
			}
		}
	}
}

// recoverConflicts finds the true conflicts behind SMD's report: ConflictsFromManagers keeps the
// path that Set.Iterate reuses (so does SMD v5's source), so a manager with several conflicting
// fields under one parent is reported with one path several times. The true conflicts are the
// fields of another manager that a forced apply adds or changes (what it removes is no conflict);
// their count must match what SMD reported.
func recoverConflicts(u *merge.Updater, live, patch *typed.TypedValue, version fieldpath.APIVersion, managers fieldpath.ManagedFields, applier string, reported merge.Conflicts) (merge.Conflicts, string) {
	work := fieldpath.ManagedFields{}
	for k, v := range managers {
		work[k] = v
	}
	res, _, err := u.Apply(live, patch, version, work, applier, true)
	if err != nil {
		return nil, fmt.Sprintf("the forced re-run failed: %v", err)
	}
	changed := fieldpath.NewSet()
	if res != nil {
		cmp, err := live.Compare(res)
		if err != nil {
			return nil, fmt.Sprintf("comparing the forced result: %v", err)
		}
		changed = cmp.Modified.Union(cmp.Added)
		if ignored := u.IgnoredFields[version]; ignored != nil {
			changed = changed.RecursiveDifference(ignored)
		}
	}
	byManager := map[string]int{}
	for _, c := range reported {
		byManager[c.Manager]++
	}
	var out merge.Conflicts
	for k, vs := range managers {
		if k == applier {
			continue
		}
		n := 0
		vs.Set().Intersection(changed).Iterate(func(p fieldpath.Path) {
			out = append(out, merge.Conflict{Manager: k, Path: p.Copy()})
			n++
		})
		if n != byManager[k] {
			return nil, fmt.Sprintf("recovering the conflicts of %s: %d fields changed under force, %d conflicts reported (%v)", k, n, byManager[k], reported)
		}
	}
	return out, ""
}

// nsName is how the API server names the object of an apply configuration: "<ns>/<name>" as
// the configuration itself states them.
func nsName(body map[string]interface{}) string {
	meta, _ := body["metadata"].(map[string]interface{})
	ns, _ := meta["namespace"].(string)
	name, _ := meta["name"].(string)
	return ns + "/" + name
}
