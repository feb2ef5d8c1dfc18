package main

import (
	"fmt"

	"sigs.k8s.io/structured-merge-diff/v4/schema"
	"sigs.k8s.io/structured-merge-diff/v4/typed"
	"sigs.k8s.io/structured-merge-diff/v4/value"
)

// smdSchema is a CRD version's schema converted for SMD, with ObjectMeta at the root.
type smdSchema struct {
	s *schema.Schema
}

func (s *smdSchema) parse(root schema.TypeRef, obj interface{}) (*typed.TypedValue, error) {
	return typed.AsTyped(value.NewValueInterface(obj), s.s, root)
}

const (
	deducedName = "__untyped_deduced_"
	atomicName  = "__untyped_atomic_"
)

type converter struct {
	types []schema.TypeDef
	next  int
}

// convertSchema turns an openAPIV3Schema into SMD types the way the API server does for a CRD:
// objects are maps (their properties fields, additionalProperties the element type,
// x-kubernetes-map-type atomic or granular), arrays are lists (x-kubernetes-list-type map with
// x-kubernetes-list-map-keys, set, or atomic, the default), x-kubernetes-preserve-unknown-fields
// and x-kubernetes-int-or-string accept anything. The root gets apiVersion, kind and ObjectMeta.
func convertSchema(root map[string]interface{}) (*smdSchema, error) {
	if root == nil {
		return nil, fmt.Errorf("the request has no schema")
	}
	c := &converter{}
	c.types = append(c.types, untypedTypes()...)
	rootCopy := deepCopy(root).(map[string]interface{})
	props, _ := rootCopy["properties"].(map[string]interface{})
	if props == nil {
		props = map[string]interface{}{}
	}
	props = deepCopy(props).(map[string]interface{})
	props["apiVersion"] = map[string]interface{}{"type": "string"}
	props["kind"] = map[string]interface{}{"type": "string"}
	delete(props, "metadata")
	rootCopy["properties"] = props
	rootCopy["type"] = "object"
	atom, err := c.atom(rootCopy, "")
	if err != nil {
		return nil, err
	}
	atom.Map.Fields = append(atom.Map.Fields, schema.StructField{Name: "metadata", Type: c.named(objectMeta())})
	c.types = append(c.types, schema.TypeDef{Name: "root", Atom: atom})
	return &smdSchema{s: &schema.Schema{Types: c.types}}, nil
}

func (c *converter) named(a schema.Atom) schema.TypeRef {
	c.next++
	name := fmt.Sprintf("t%d", c.next)
	c.types = append(c.types, schema.TypeDef{Name: name, Atom: a})
	return schema.TypeRef{NamedType: strPtr(name)}
}

func (c *converter) ref(node map[string]interface{}, at string) (schema.TypeRef, error) {
	if b, _ := node["x-kubernetes-int-or-string"].(bool); b {
		s := schema.Scalar("untyped")
		return schema.TypeRef{Inlined: schema.Atom{Scalar: &s}}, nil
	}
	t, _ := node["type"].(string)
	preserve, _ := node["x-kubernetes-preserve-unknown-fields"].(bool)
	if t == "" && preserve {
		return schema.TypeRef{NamedType: strPtr(deducedName)}, nil
	}
	a, err := c.atom(node, at)
	if err != nil {
		return schema.TypeRef{}, err
	}
	if a.Scalar != nil {
		return schema.TypeRef{Inlined: a}, nil
	}
	return c.named(a), nil
}

func (c *converter) atom(node map[string]interface{}, at string) (schema.Atom, error) {
	t, _ := node["type"].(string)
	preserve, _ := node["x-kubernetes-preserve-unknown-fields"].(bool)
	switch t {
	case "string":
		s := schema.String
		return schema.Atom{Scalar: &s}, nil
	case "integer", "number":
		s := schema.Numeric
		return schema.Atom{Scalar: &s}, nil
	case "boolean":
		s := schema.Boolean
		return schema.Atom{Scalar: &s}, nil
	case "array":
		items, _ := node["items"].(map[string]interface{})
		if items == nil {
			return schema.Atom{}, fmt.Errorf("%s: an array without items", at)
		}
		elem, err := c.ref(items, at+"[]")
		if err != nil {
			return schema.Atom{}, err
		}
		l := &schema.List{ElementType: elem, ElementRelationship: schema.Atomic}
		switch lt, _ := node["x-kubernetes-list-type"].(string); lt {
		case "", "atomic":
		case "set":
			l.ElementRelationship = schema.Associative
		case "map":
			l.ElementRelationship = schema.Associative
			keys, _ := node["x-kubernetes-list-map-keys"].([]interface{})
			for _, k := range keys {
				ks, ok := k.(string)
				if !ok {
					return schema.Atom{}, fmt.Errorf("%s: a list map key that is not a string", at)
				}
				l.Keys = append(l.Keys, ks)
			}
		default:
			return schema.Atom{}, fmt.Errorf("%s: unknown x-kubernetes-list-type %q", at, lt)
		}
		return schema.Atom{List: l}, nil
	case "object", "":
		m := &schema.Map{}
		props, _ := node["properties"].(map[string]interface{})
		for _, name := range sortedKeys(props) {
			p, _ := props[name].(map[string]interface{})
			if p == nil {
				return schema.Atom{}, fmt.Errorf("%s.%s: a property that is not a schema", at, name)
			}
			ref, err := c.ref(p, at+"."+name)
			if err != nil {
				return schema.Atom{}, err
			}
			m.Fields = append(m.Fields, schema.StructField{Name: name, Type: ref})
		}
		if ap, ok := node["additionalProperties"].(map[string]interface{}); ok {
			ref, err := c.ref(ap, at+".*")
			if err != nil {
				return schema.Atom{}, err
			}
			m.ElementType = ref
		} else if preserve || (t == "" && props == nil) {
			m.ElementType = schema.TypeRef{NamedType: strPtr(deducedName)}
		}
		switch mt, _ := node["x-kubernetes-map-type"].(string); mt {
		case "atomic":
			m.ElementRelationship = schema.Atomic
		case "", "granular":
			m.ElementRelationship = schema.Separable
		default:
			return schema.Atom{}, fmt.Errorf("%s: unknown x-kubernetes-map-type %q", at, mt)
		}
		return schema.Atom{Map: m}, nil
	default:
		return schema.Atom{}, fmt.Errorf("%s: unknown type %q", at, t)
	}
}

// untypedTypes are the two catch-all types of the API server: deduced (maps merge key by key,
// lists are atomic) and atomic.
func untypedTypes() []schema.TypeDef {
	untyped := schema.Scalar("untyped")
	return []schema.TypeDef{
		{Name: atomicName, Atom: schema.Atom{
			Scalar: &untyped,
			List:   &schema.List{ElementType: schema.TypeRef{NamedType: strPtr(atomicName)}, ElementRelationship: schema.Atomic},
			Map:    &schema.Map{ElementType: schema.TypeRef{NamedType: strPtr(atomicName)}, ElementRelationship: schema.Atomic},
		}},
		{Name: deducedName, Atom: schema.Atom{
			Scalar: &untyped,
			List:   &schema.List{ElementType: schema.TypeRef{NamedType: strPtr(atomicName)}, ElementRelationship: schema.Atomic},
			Map:    &schema.Map{ElementType: schema.TypeRef{NamedType: strPtr(deducedName)}, ElementRelationship: schema.Separable},
		}},
	}
}

// objectMeta is metav1.ObjectMeta as the API server's schema describes it.
func objectMeta() schema.Atom {
	str := schema.String
	num := schema.Numeric
	boolean := schema.Boolean
	s := schema.TypeRef{Inlined: schema.Atom{Scalar: &str}}
	n := schema.TypeRef{Inlined: schema.Atom{Scalar: &num}}
	b := schema.TypeRef{Inlined: schema.Atom{Scalar: &boolean}}
	stringMap := schema.TypeRef{Inlined: schema.Atom{Map: &schema.Map{ElementType: s, ElementRelationship: schema.Separable}}}
	ownerRef := schema.TypeRef{Inlined: schema.Atom{Map: &schema.Map{Fields: []schema.StructField{
		{Name: "apiVersion", Type: s}, {Name: "blockOwnerDeletion", Type: b}, {Name: "controller", Type: b},
		{Name: "kind", Type: s}, {Name: "name", Type: s}, {Name: "uid", Type: s},
	}}}}
	return schema.Atom{Map: &schema.Map{Fields: []schema.StructField{
		{Name: "annotations", Type: stringMap},
		{Name: "creationTimestamp", Type: s},
		{Name: "deletionGracePeriodSeconds", Type: n},
		{Name: "deletionTimestamp", Type: s},
		{Name: "finalizers", Type: schema.TypeRef{Inlined: schema.Atom{List: &schema.List{ElementType: s, ElementRelationship: schema.Associative}}}},
		{Name: "generateName", Type: s},
		{Name: "generation", Type: n},
		{Name: "labels", Type: stringMap},
		{Name: "managedFields", Type: schema.TypeRef{Inlined: schema.Atom{List: &schema.List{ElementType: schema.TypeRef{NamedType: strPtr(atomicName)}, ElementRelationship: schema.Atomic}}}},
		{Name: "name", Type: s},
		{Name: "namespace", Type: s},
		{Name: "ownerReferences", Type: schema.TypeRef{Inlined: schema.Atom{List: &schema.List{ElementType: ownerRef, ElementRelationship: schema.Associative, Keys: []string{"uid"}}}}},
		{Name: "resourceVersion", Type: s},
		{Name: "selfLink", Type: s},
		{Name: "uid", Type: s},
	}}}
}

func sortedKeys(m map[string]interface{}) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	for i := 1; i < len(keys); i++ {
		for j := i; j > 0 && keys[j] < keys[j-1]; j-- {
			keys[j], keys[j-1] = keys[j-1], keys[j]
		}
	}
	return keys
}
