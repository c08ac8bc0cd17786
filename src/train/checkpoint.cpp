// Trainer checkpoints: one safetensors file (written atomically) holding every parameter, its
// AdamW moments and, mid-accumulation, its gradient, with the counters and RNG state as metadata.
#include <cstring>
#include <sstream>
#include <stdexcept>
#include <string>

#include "kandil/safetensors.h"
#include "train/trainer_impl.h"

namespace kandil {

namespace {

constexpr const char* kFormat = "kandil-train-checkpoint-1";

std::string mode_name(const TrainOptions& o) {
  return o.mode == TrainOptions::Mode::lora ? "lora" : "full";
}

// Copies a tensor into dst after checking dtype and shape; names the file and tensor on error.
Result<void> read_tensor(const SafetensorsFile& f, const std::string& name,
                         const std::vector<int64_t>& shape, std::vector<float>& dst) {
  const SafetensorsTensor* t = f.find(name);
  if (!t) return make_error(f.name() + ": missing tensor '" + name + "'");
  if (t->dtype != SafetensorsDType::F32 || t->shape != shape) {
    return make_error(f.name() + ": tensor '" + name + "' has the wrong dtype or shape");
  }
  dst.resize(static_cast<size_t>(t->n_elements()));
  std::memcpy(dst.data(), t->data, dst.size() * sizeof(float));
  return {};
}

}  // namespace

Result<void> Trainer::save_checkpoint(const std::string& path) const {
  const Impl& im = *impl_;
  SafetensorsWriter w;
  for (size_t i = 0; i < im.params.size(); ++i) {
    const TrainParam& p = im.params[i];
    const size_t bytes = p.value.size() * sizeof(float);
    KANDIL_CHECK_OK(
        w.add("param." + p.name, SafetensorsDType::F32, p.shape, p.value.data(), bytes));
    KANDIL_CHECK_OK(
        w.add("adam_m." + p.name, SafetensorsDType::F32, p.shape, im.adam[i].m.data(), bytes));
    KANDIL_CHECK_OK(
        w.add("adam_v." + p.name, SafetensorsDType::F32, p.shape, im.adam[i].v.data(), bytes));
    if (im.micro > 0) {
      KANDIL_CHECK_OK(
          w.add("grad." + p.name, SafetensorsDType::F32, p.shape, p.grad.data(), bytes));
    }
  }
  std::ostringstream rng;
  rng << im.rng;
  w.set_metadata("format", kFormat);
  w.set_metadata("mode", mode_name(im.opt));
  w.set_metadata("n_params", std::to_string(im.params.size()));
  w.set_metadata("step", std::to_string(im.opt_step));
  w.set_metadata("micro", std::to_string(im.micro));
  w.set_metadata("lora_scale", std::to_string(im.lora_scale));
  w.set_metadata("rng", rng.str());
  return w.write_file(path);
}

Result<void> Trainer::load_checkpoint(const std::string& path) {
  Impl& im = *impl_;
  auto opened = SafetensorsFile::open(path);
  if (!opened.ok()) return opened.error();
  const SafetensorsFile& f = *opened;
  const auto& md = f.metadata();
  auto meta = [&](const char* key) -> Result<std::string> {
    auto it = md.find(key);
    if (it == md.end()) return make_error(path + ": metadata key '" + key + "' missing");
    return it->second;
  };
  auto num = [&](const char* key) -> Result<int64_t> {
    auto s = meta(key);
    if (!s.ok()) return s.error();
    try {
      size_t used = 0;
      const long long v = std::stoll(*s, &used);
      if (used != s->size() || v < 0) throw std::invalid_argument(key);
      return static_cast<int64_t>(v);
    } catch (const std::exception&) {
      return make_error(path + ": metadata '" + key + "' is not a non-negative integer");
    }
  };
  auto format = meta("format");
  if (!format.ok()) return format.error();
  if (*format != kFormat) return make_error(path + ": not a " + std::string(kFormat) + " file");
  auto mode = meta("mode");
  if (!mode.ok()) return mode.error();
  if (*mode != mode_name(im.opt)) {
    return make_error(path + ": checkpoint of a " + *mode + " run, trainer is " +
                      mode_name(im.opt));
  }
  auto n_params = num("n_params");
  auto step = num("step");
  auto micro = num("micro");
  auto rng_text = meta("rng");
  if (!n_params.ok()) return n_params.error();
  if (!step.ok()) return step.error();
  if (!micro.ok()) return micro.error();
  if (!rng_text.ok()) return rng_text.error();
  if (*n_params != static_cast<int64_t>(im.params.size())) {
    return make_error(path + ": holds " + std::to_string(*n_params) + " parameters, trainer has " +
                      std::to_string(im.params.size()) + " (different targets or model?)");
  }
  if (*micro >= im.opt.grad_accum) {
    return make_error(path + ": micro-batch count " + std::to_string(*micro) +
                      " does not fit grad_accum " + std::to_string(im.opt.grad_accum));
  }
  std::mt19937_64 rng;
  std::istringstream rs(*rng_text);
  rs >> rng;
  if (rs.fail()) return make_error(path + ": metadata 'rng' is not an mt19937_64 state");
  // Read everything before changing anything.
  const size_t n = im.params.size();
  std::vector<std::vector<float>> value(n), m(n), v(n), g(n);
  for (size_t i = 0; i < n; ++i) {
    const TrainParam& p = im.params[i];
    KANDIL_CHECK_OK(read_tensor(f, "param." + p.name, p.shape, value[i]));
    KANDIL_CHECK_OK(read_tensor(f, "adam_m." + p.name, p.shape, m[i]));
    KANDIL_CHECK_OK(read_tensor(f, "adam_v." + p.name, p.shape, v[i]));
    if (*micro > 0) {
      KANDIL_CHECK_OK(read_tensor(f, "grad." + p.name, p.shape, g[i]));
    } else {
      g[i].assign(p.value.size(), 0.0f);
    }
  }
  for (size_t i = 0; i < n; ++i) {
    im.params[i].value = std::move(value[i]);
    im.params[i].grad = std::move(g[i]);
    im.adam[i].m = std::move(m[i]);
    im.adam[i].v = std::move(v[i]);
  }
  im.opt_step = *step;
  im.micro = static_cast<int32_t>(*micro);
  im.rng = rng;
  return {};
}

}  // namespace kandil
