// The API description every listener serves: GET /openapi.json (an OpenAPI 3.1 document of that
// listener's routes, assembled from the JSON files in src/app/openapi/ compiled into the binary)
// and GET /docs (one self-contained HTML page rendered from it on the server).
#pragma once

#include <boost/json/value.hpp>
#include <string>

#include "offerd/app/config.hpp"

namespace offerd {

class router;

// Which of a listener's routes need a credential (see security/guard.hpp): none when no
// credentials are configured. /health, /openapi.json and /docs never do.
struct api_auth {
    bool routes = false;   // the API routes (the orchestrator's always once credentials are configured)
    bool metrics = false;  // GET /metrics and GET /ready
};

// The document of one listener: its routes and the routes every listener has, every status with
// its body schema, the request and response headers, and, where auth applies, the Bearer scheme
// with 401 and 429. Components no route refers to are left out. Throws std::runtime_error when an
// embedded file does not parse (a build defect, caught by the tests).
boost::json::value openapi_document(role listener, const api_auth& auth);

// The document as an HTML page: operations with their parameters, bodies and statuses, then the
// schemas. Inline CSS only: no script, font or style sheet is fetched.
std::string render_api_docs(const boost::json::value& doc);

// The document as JSON text, indented, numbers as people write them (`0.5`, not `5E-1`).
std::string to_json_text(const boost::json::value& v);

// Adds GET /openapi.json (application/json) and GET /docs (text/html) to r, both built once here.
void add_api_doc_routes(router& r, role listener, const api_auth& auth);

}  // namespace offerd
