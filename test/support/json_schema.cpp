// The JSON Schema subset validator (see json_schema.hpp for the subset and why it is ours).
#include "json_schema.hpp"

#include <boost/json/serialize.hpp>
#include <cmath>
#include <regex>
#include <set>

namespace offerd::test {

namespace json = boost::json;

namespace {

const std::set<std::string, std::less<>> checked{"$ref", "type", "required", "properties", "additionalProperties", "enum",
                                                 "const", "items", "minItems", "maxItems", "minimum", "maximum",
                                                 "minLength", "maxLength", "pattern", "anyOf"};
// $schema, $id, $comment and $defs are document structure: $defs holds schemas reached by $ref.
const std::set<std::string, std::less<>> annotations{"description", "title", "summary", "examples", "format", "default", "deprecated",
                                                      "$schema", "$id", "$comment", "$defs"};

std::string pointer_escape(std::string_view key) {
    std::string out;
    for (char c : key) {
        if (c == '~') out += "~0";
        else if (c == '/') out += "~1";
        else out += c;
    }
    return out;
}

bool is_type(const json::value& v, std::string_view type) {
    if (type == "object") return v.is_object();
    if (type == "array") return v.is_array();
    if (type == "string") return v.is_string();
    if (type == "boolean") return v.is_bool();
    if (type == "null") return v.is_null();
    if (type == "number") return v.is_number();
    if (type == "integer") return v.is_int64() || v.is_uint64() || (v.is_double() && std::trunc(v.get_double()) == v.get_double());
    return false;
}

double number_of(const json::value& v) {
    if (v.is_int64()) return static_cast<double>(v.get_int64());
    if (v.is_uint64()) return static_cast<double>(v.get_uint64());
    return v.get_double();
}

// Code points, not bytes, as JSON Schema counts string length.
std::size_t length_of(const json::string& s) {
    std::size_t n = 0;
    for (unsigned char c : s)
        if ((c & 0xC0) != 0x80) ++n;
    return n;
}

// Numbers compare by value (1 == 1.0), as JSON Schema's enum and const do.
bool json_equal(const json::value& a, const json::value& b) {
    if (a.is_number() && b.is_number()) return number_of(a) == number_of(b);
    return a == b;
}

void validate(const json::value& v, const json::value& schema_value, const json::value& root, const std::string& at,
              std::vector<std::string>& out, int depth) {
    if (depth > 64) {
        out.push_back(at + ": $ref nesting too deep");
        return;
    }
    if (schema_value.is_bool()) {
        if (!schema_value.get_bool()) out.push_back(at + ": no value is allowed here");
        return;
    }
    if (!schema_value.is_object()) {
        out.push_back(at + ": the schema is not an object");
        return;
    }
    const json::object& s = schema_value.as_object();
    const auto problem = [&](const std::string& what) { out.push_back((at.empty() ? std::string("/") : at) + ": " + what); };
    for (const auto& [k, unused] : s)
        if (!checked.count(std::string_view(k)) && !annotations.count(std::string_view(k)))
            problem("schema keyword '" + std::string(k) + "' is outside the validated subset");

    if (const json::value* r = s.if_contains("$ref")) {
        const json::value* target = r->is_string() ? resolve_ref(root, r->get_string()) : nullptr;
        if (!target) problem("unresolved $ref " + json::serialize(*r));
        else validate(v, *target, root, at, out, depth + 1);
    }
    if (const json::value* any = s.if_contains("anyOf")) {
        bool one_fits = false;
        std::vector<std::string> why;
        for (const json::value& branch : any->as_array()) {
            std::vector<std::string> branch_problems;
            validate(v, branch, root, at, branch_problems, depth + 1);
            one_fits = one_fits || branch_problems.empty();
            why.insert(why.end(), branch_problems.begin(), branch_problems.end());
        }
        if (!one_fits) problem("fits none of anyOf (" + std::to_string(why.size()) + " problems, first: " + (why.empty() ? "" : why.front()) + ")");
    }
    if (const json::value* t = s.if_contains("type")) {
        bool ok = false;
        if (t->is_string()) ok = is_type(v, t->get_string());
        else if (t->is_array())
            for (const json::value& one : t->get_array()) ok = ok || (one.is_string() && is_type(v, one.get_string()));
        if (!ok) {
            problem("expected type " + json::serialize(*t) + ", got " + json::serialize(v));
            return;  // the other keywords would only repeat it
        }
    }
    if (const json::value* e = s.if_contains("enum")) {
        bool found = false;
        for (const json::value& one : e->as_array()) found = found || json_equal(one, v);
        if (!found) problem(json::serialize(v) + " is not one of " + json::serialize(*e));
    }
    if (const json::value* c = s.if_contains("const"); c && !json_equal(*c, v)) problem(json::serialize(v) + " is not " + json::serialize(*c));
    if (v.is_number()) {
        if (const json::value* m = s.if_contains("minimum"); m && number_of(v) < number_of(*m)) problem(json::serialize(v) + " is below the minimum " + json::serialize(*m));
        if (const json::value* m = s.if_contains("maximum"); m && number_of(v) > number_of(*m)) problem(json::serialize(v) + " is above the maximum " + json::serialize(*m));
    }
    if (v.is_string()) {
        const std::size_t n = length_of(v.get_string());
        if (const json::value* m = s.if_contains("minLength"); m && static_cast<double>(n) < number_of(*m)) problem("shorter than minLength " + json::serialize(*m));
        if (const json::value* m = s.if_contains("maxLength"); m && static_cast<double>(n) > number_of(*m)) problem("longer than maxLength " + json::serialize(*m));
        if (const json::value* p = s.if_contains("pattern")) {
            const std::regex re(std::string(p->as_string()), std::regex::ECMAScript);
            if (!std::regex_search(std::string(v.get_string()), re)) problem(json::serialize(v) + " does not match " + json::serialize(*p));
        }
    }
    if (const json::array* a = v.if_array()) {
        if (const json::value* m = s.if_contains("minItems"); m && static_cast<double>(a->size()) < number_of(*m)) problem("fewer items than minItems " + json::serialize(*m));
        if (const json::value* m = s.if_contains("maxItems"); m && static_cast<double>(a->size()) > number_of(*m)) problem("more items than maxItems " + json::serialize(*m));
        if (const json::value* items = s.if_contains("items"))
            for (std::size_t i = 0; i < a->size(); ++i) validate((*a)[i], *items, root, at + "/" + std::to_string(i), out, depth + 1);
    }
    if (const json::object* o = v.if_object()) {
        if (const json::value* req = s.if_contains("required"))
            for (const json::value& name : req->as_array())
                if (!o->contains(name.as_string())) problem("required field '" + std::string(name.as_string()) + "' is missing");
        const json::object* props = s.contains("properties") ? s.at("properties").if_object() : nullptr;
        const json::value* extra = s.if_contains("additionalProperties");
        for (const auto& [k, child] : *o) {
            const std::string child_at = at + "/" + pointer_escape(k);
            if (const json::value* ps = props ? props->if_contains(k) : nullptr) validate(child, *ps, root, child_at, out, depth + 1);
            else if (extra) validate(child, *extra, root, child_at, out, depth + 1);
        }
    }
}

void defects(const json::value& schema_value, const json::value& root, const std::string& at, std::vector<std::string>& out,
             std::set<std::string>& visited) {
    if (schema_value.is_bool()) return;
    if (!schema_value.is_object()) {
        out.push_back(at + ": the schema is not an object");
        return;
    }
    const json::object& s = schema_value.as_object();
    for (const auto& [k, child] : s) {
        const std::string_view key(k);
        if (!checked.count(key) && !annotations.count(key)) out.push_back(at + ": keyword '" + std::string(key) + "' is outside the validated subset");
        if (key == "$ref") {
            const std::string r = child.is_string() ? std::string(child.get_string()) : std::string();
            const json::value* target = resolve_ref(root, r);
            if (!target) out.push_back(at + ": unresolved $ref '" + r + "'");
            else if (visited.insert(r).second) defects(*target, root, r, out, visited);
        } else if (key == "properties" && child.is_object()) {
            for (const auto& [name, p] : child.get_object()) defects(p, root, at + "/properties/" + pointer_escape(name), out, visited);
        } else if (key == "anyOf" && child.is_array()) {
            for (std::size_t i = 0; i < child.get_array().size(); ++i) defects(child.get_array()[i], root, at + "/anyOf/" + std::to_string(i), out, visited);
        } else if (key == "items" || key == "additionalProperties") {
            defects(child, root, at + "/" + std::string(key), out, visited);
        } else if (key == "pattern") {
            try {
                const std::regex re(std::string(child.as_string()), std::regex::ECMAScript);
            } catch (const std::exception& e) {
                out.push_back(at + ": pattern does not compile: " + e.what());
            }
        }
    }
}

}  // namespace

const json::value* resolve_ref(const json::value& root, std::string_view ref) {
    if (!ref.starts_with("#")) return nullptr;
    ref.remove_prefix(1);
    const json::value* at = &root;
    while (!ref.empty()) {
        if (ref.front() != '/') return nullptr;
        ref.remove_prefix(1);
        const std::size_t slash = ref.find('/');
        // The JSON Pointer escapes (~1 is '/', ~0 is '~'), decoded in one pass: in-place
        // std::string::replace here set off g++ 12's -Wstringop-overflow (a false positive).
        const std::string_view raw = ref.substr(0, slash);
        std::string token;
        for (std::size_t i = 0; i < raw.size(); ++i) {
            if (raw[i] == '~' && i + 1 < raw.size() && (raw[i + 1] == '0' || raw[i + 1] == '1')) {
                token += raw[++i] == '1' ? '/' : '~';
            } else {
                token += raw[i];
            }
        }
        ref = slash == std::string_view::npos ? std::string_view() : ref.substr(slash);
        const json::object* o = at->if_object();
        at = o ? o->if_contains(token) : nullptr;
        if (!at) return nullptr;
    }
    return at;
}

std::vector<std::string> schema_violations(const json::value& instance, const json::value& schema, const json::value& root) {
    std::vector<std::string> out;
    validate(instance, schema, root, "", out, 0);
    return out;
}

std::vector<std::string> schema_defects(const json::value& schema, const json::value& root) {
    std::vector<std::string> out;
    std::set<std::string> visited;
    defects(schema, root, "", out, visited);
    return out;
}

}  // namespace offerd::test
