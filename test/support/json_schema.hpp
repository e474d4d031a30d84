// A JSON Schema subset validator over Boost.JSON, for checking real responses against the OpenAPI
// documents the listeners serve, and real log lines against docs/log-schema.json.
//
// Hand-rolled on purpose: Debian packages no C++ JSON Schema validator that works on Boost.JSON
// values (the packaged ones are built on other JSON libraries), and the documents use a small,
// fixed subset. Checked: $ref (local, "#/..."), anyOf, type (one or a list; "integer" also takes an
// integral double, as JSON Schema does), required, properties, additionalProperties (bool or
// schema), enum, const, items, minItems, maxItems, minimum, maximum, minLength, maxLength, pattern
// (ECMAScript, searched). Annotations are ignored: description, title, summary, examples, format,
// default, deprecated, and the document keywords $schema, $id, $comment, $defs (whose schemas
// are checked where a $ref reaches them). Any other keyword is reported as a problem, so a
// document cannot come to rely on a rule this validator would silently skip.
#pragma once

#include <boost/json/value.hpp>
#include <string>
#include <vector>

namespace offerd::test {

// Every way `instance` fails `schema`, each as "<json pointer>: <problem>"; empty when it is valid.
// `root` is the document that local $refs resolve against.
std::vector<std::string> schema_violations(const boost::json::value& instance, const boost::json::value& schema,
                                           const boost::json::value& root);

// Problems in a schema itself: keywords outside the subset, $refs that do not resolve.
std::vector<std::string> schema_defects(const boost::json::value& schema, const boost::json::value& root);

// The value at a local reference ("#/components/schemas/Error"), or nullptr.
const boost::json::value* resolve_ref(const boost::json::value& root, std::string_view ref);

}  // namespace offerd::test
