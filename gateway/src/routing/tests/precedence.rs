//! The documented precedence order, one rule per test.

use serde_json::json;

use super::{hit, table};

#[test]
fn host_specificity_comes_before_path_specificity() {
    let t = table(json!([
        {"name": "any-exact-path", "match": {"path": "/a/b"}, "upstream": "u"},
        {"name": "wild-template", "match": {"host": "*.example.com", "path_template": "/a/{x}"}, "upstream": "u"},
        {"name": "exact-host-root", "match": {"host": "api.example.com"}, "upstream": "u"},
    ]));
    assert_eq!(
        hit(&t, "GET", "http://api.example.com/a/b", &[]),
        "exact-host-root"
    );
    assert_eq!(
        hit(&t, "GET", "http://shop.example.com/a/b", &[]),
        "wild-template"
    );
    assert_eq!(
        hit(&t, "GET", "http://other.test/a/b", &[]),
        "any-exact-path"
    );
}

#[test]
fn longer_wildcard_suffix_wins() {
    let t = table(json!([
        {"name": "short", "match": {"host": "*.example.com"}, "upstream": "u"},
        {"name": "long", "match": {"host": "*.eu.example.com"}, "upstream": "u"},
    ]));
    assert_eq!(hit(&t, "GET", "http://shop.eu.example.com/", &[]), "long");
    assert_eq!(hit(&t, "GET", "http://shop.us.example.com/", &[]), "short");
    assert_eq!(hit(&t, "GET", "http://eu.example.com/", &[]), "short");
}

#[test]
fn a_more_specific_host_that_lacks_the_path_falls_through() {
    let t = table(json!([
        {"name": "exact-host-admin", "match": {"host": "api.example.com", "path_prefix": "/admin"}, "upstream": "u"},
        {"name": "wild", "match": {"host": "*.example.com", "path_prefix": "/shop"}, "upstream": "u"},
        {"name": "fallback", "upstream": "u"},
    ]));
    assert_eq!(
        hit(&t, "GET", "http://api.example.com/admin/x", &[]),
        "exact-host-admin"
    );
    assert_eq!(hit(&t, "GET", "http://api.example.com/shop", &[]), "wild");
    assert_eq!(
        hit(&t, "GET", "http://api.example.com/other", &[]),
        "fallback"
    );
}

#[test]
fn exact_then_template_then_longest_prefix() {
    let t = table(json!([
        {"name": "root", "match": {"path_prefix": "/"}, "upstream": "u"},
        {"name": "prefix", "match": {"path_prefix": "/products"}, "upstream": "u"},
        {"name": "long-prefix", "match": {"path_prefix": "/products/featured"}, "upstream": "u"},
        {"name": "template", "match": {"path_template": "/products/{id}"}, "upstream": "u"},
        {"name": "exact", "match": {"path": "/products/new"}, "upstream": "u"},
    ]));
    assert_eq!(hit(&t, "GET", "/products/new", &[]), "exact");
    assert_eq!(hit(&t, "GET", "/products/42", &[]), "template");
    // The template matches `/products/featured` too and beats the longer prefix.
    assert_eq!(hit(&t, "GET", "/products/featured", &[]), "template");
    assert_eq!(
        hit(&t, "GET", "/products/featured/today", &[]),
        "long-prefix"
    );
    assert_eq!(hit(&t, "GET", "/products/42/reviews", &[]), "prefix");
    assert_eq!(hit(&t, "GET", "/products", &[]), "prefix");
    assert_eq!(hit(&t, "GET", "/orders", &[]), "root");
}

#[test]
fn literal_segment_beats_parameter_left_to_right() {
    let t = table(json!([
        {"name": "p-p", "match": {"path_template": "/{a}/{b}"}, "upstream": "u"},
        {"name": "p-lit", "match": {"path_template": "/{a}/edit"}, "upstream": "u"},
        {"name": "lit-p", "match": {"path_template": "/users/{id}"}, "upstream": "u"},
    ]));
    assert_eq!(hit(&t, "GET", "/users/edit", &[]), "lit-p");
    assert_eq!(hit(&t, "GET", "/teams/edit", &[]), "p-lit");
    assert_eq!(hit(&t, "GET", "/teams/7", &[]), "p-p");
}

#[test]
fn a_literal_branch_that_fails_backtracks_to_the_parameter() {
    let t = table(json!([
        {"name": "users-me", "match": {"path_template": "/users/me/settings"}, "upstream": "u"},
        {"name": "user-posts", "match": {"path_template": "/users/{id}/posts"}, "upstream": "u"},
    ]));
    assert_eq!(hit(&t, "GET", "/users/me/posts", &[]), "user-posts");
    assert_eq!(hit(&t, "GET", "/users/me/settings", &[]), "users-me");
}

#[test]
fn more_headers_then_version_then_methods_then_declaration_order() {
    let t = table(json!([
        {"name": "first", "match": {"path": "/x"}, "upstream": "u"},
        {"name": "second", "match": {"path": "/x"}, "upstream": "u"},
        {"name": "get", "match": {"path": "/x", "methods": ["GET"]}, "upstream": "u"},
        {"name": "versioned", "match": {"path": "/x"}, "version": 1, "upstream": "u"},
        {"name": "one-header", "match": {"path": "/x", "headers": [{"name": "a", "present": true}]}, "upstream": "u"},
        {"name": "two-headers", "match": {"path": "/x", "headers": [{"name": "a", "present": true}, {"name": "b", "present": true}]}, "upstream": "u"},
    ]));
    assert_eq!(
        hit(&t, "GET", "/x", &[("a", "1"), ("b", "1")]),
        "two-headers"
    );
    assert_eq!(hit(&t, "GET", "/x", &[("a", "1")]), "one-header");
    assert_eq!(hit(&t, "GET", "/x", &[]), "versioned");
    assert_eq!(hit(&t, "GET", "/x", &[("api-version", "2")]), "get");
    assert_eq!(hit(&t, "POST", "/x", &[("api-version", "2")]), "first");
}
