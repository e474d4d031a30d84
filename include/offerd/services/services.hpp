// Route tables of the three external-system stand-ins: member-data, prediction, offer-engine.
#pragma once

#include <memory>
#include <string>

#include "offerd/net/router.hpp"

namespace offerd {

class member_store;

struct member_data_options {
    std::string journal;          // file that records every stored write and is replayed on start ("" = none)
    bool journal_fsync = false;   // fdatasync each journal record (survives power loss, not just crashes)
};

// GET /health, POST /member_data, GET /member_data/{memberId}. A POST carrying an
// Idempotency-Key already seen (10 min, 100k keys; rebuilt from the journal) is answered with
// the stored object and not stored again. Replays the journal into the store first; throws
// std::runtime_error when the journal cannot be opened.
std::shared_ptr<router> make_member_data_router(std::shared_ptr<member_store> store, const member_data_options& opt = {});
// GET /health, POST /ml/ats/predict, POST /ml/resp/predict.
std::shared_ptr<router> make_prediction_router();
// GET /health, POST /offer/assign.
std::shared_ptr<router> make_offer_engine_router();

// GET /health -> 200 {"status":"ok"}
void add_health_route(router& r);

}  // namespace offerd
