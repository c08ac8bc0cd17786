// llama.cpp's GET/POST /lora-adapters, plus loading and unloading adapters while serving.
#include "serve/server_impl.h"

namespace kandil {

using nlohmann::json;
using serve::ApiError;

namespace {
json entry_json(const serve::LoraEntry& e) {
  return {{"id", e.id}, {"path", e.path}, {"scale", e.scale}};
}
}  // namespace

void Server::Impl::add_lora_routes() {
  const std::string label = "/lora-adapters";
  auto list = [this, label](httplib::Response& res) {
    json out = json::array();
    for (const auto& e : lora->list()) out.push_back(entry_json(e));
    send_json(res, out, label);
  };
  http.Get("/lora-adapters",
           [list](const httplib::Request&, httplib::Response& res) { list(res); });
  http.Post(
      "/lora-adapters", [this, list, label](const httplib::Request& req, httplib::Response& res) {
        ApiError err;
        auto j = serve::parse_json_body(req.body, limits.max_depth, err);
        if (!j) return send_error(res, err, label);
        std::vector<std::pair<int32_t, float>> scales;
        if (!serve::parse_lora_list(*j, "body", scales, err)) return send_error(res, err, label);
        if (auto r = lora->set_global(scales); !r.ok()) {
          return send_error(
              res, ApiError{400, r.error().message, "invalid_request_error", "id", ""}, label);
        }
        list(res);
      });
  http.Post("/lora-adapters/load", [this, label](const httplib::Request& req,
                                                 httplib::Response& res) {
    ApiError err;
    auto j = serve::parse_json_body(req.body, limits.max_depth, err);
    if (!j) return send_error(res, err, label);
    if (!j->is_object() || !j->contains("path") || !(*j)["path"].is_string()) {
      return send_error(
          res, ApiError{400, "'path' must be a string", "invalid_request_error", "path", ""},
          label);
    }
    float scale = 1.0f;
    if (j->contains("scale")) {
      const json& s = (*j)["scale"];
      if (!s.is_number() || !std::isfinite(s.get<double>()) || std::fabs(s.get<double>()) > 100) {
        return send_error(res,
                          ApiError{400, "'scale' must be a number between -100 and 100",
                                   "invalid_request_error", "scale", ""},
                          label);
      }
      scale = s.get<float>();
    }
    const std::string path = (*j)["path"].get<std::string>();
    auto id = lora->load(path, scale);
    if (!id.ok()) {
      return send_error(res, ApiError{400, id.error().message, "invalid_request_error", "path", ""},
                        label);
    }
    send_json(res, {{"id", *id}, {"path", path}, {"scale", scale}}, label);
  });
  http.Delete(R"(/lora-adapters/(\d{1,9}))",
              [this, label](const httplib::Request& req, httplib::Response& res) {
                const int32_t id = std::stoi(req.matches[1].str());
                if (!lora->unload(id)) {
                  return send_error(res,
                                    ApiError{404, "no LoRA adapter with id " + std::to_string(id),
                                             "not_found_error", "id", ""},
                                    label);
                }
                send_json(res, {{"id", id}, {"deleted", true}}, label);
              });
}

}  // namespace kandil
