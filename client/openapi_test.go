package client_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"

	"couponpush/httpapi"
)

// openAPIPath is the OpenAPI document of the HTTP API.
const openAPIPath = "../docs/openapi.yaml"

// loadOpenAPI loads and validates docs/openapi.yaml.
func loadOpenAPI(t *testing.T) *openapi3.T {
	t.Helper()
	doc, err := openapi3.NewLoader().LoadFromFile(openAPIPath)
	if err != nil {
		t.Fatalf("load %s: %v", openAPIPath, err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("%s is not a valid OpenAPI 3 document: %v", openAPIPath, err)
	}
	return doc
}

// documented lists the document's operations as route patterns
// ("METHOD /path/{param}"), sorted.
func documented(doc *openapi3.T) []string {
	var ps []string
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			ps = append(ps, strings.ToUpper(method)+" "+path)
		}
	}
	slices.Sort(ps)
	return ps
}

// TestOpenAPIValid validates the document and checks what every
// operation must say: who may call it and what its errors look like.
func TestOpenAPIValid(t *testing.T) {
	doc := loadOpenAPI(t)
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			t.Run(method+" "+path, func(t *testing.T) {
				if op.Security == nil {
					t.Fatal("no security requirement (probes say security: [])")
				}
				for status, ref := range op.Responses.Map() {
					if status[0] != '4' && status[0] != '5' || path == "/readyz" {
						continue
					}
					mt := ref.Value.Content.Get("application/json")
					if mt == nil || mt.Schema.Ref != "#/components/schemas/ErrorBody" {
						t.Errorf("response %s is not an ErrorBody", status)
					}
				}
			})
		}
	}
}

// TestOpenAPIRoutes checks the document and the server's route table name
// the same routes, both ways: method, path and parameter names.
func TestOpenAPIRoutes(t *testing.T) {
	doc := loadOpenAPI(t)
	served := slices.Sorted(slices.Values(httpapi.Routes()))
	docs := documented(doc)
	for _, p := range served {
		if !slices.Contains(docs, p) {
			t.Errorf("the server serves %q; %s does not document it", p, openAPIPath)
		}
	}
	for _, p := range docs {
		if !slices.Contains(served, p) {
			t.Errorf("%s documents %q; the server does not serve it", openAPIPath, p)
		}
	}
}
