// libFuzzer target for training-data JSONL: arbitrary bytes in; the lines are parsed, the examples
// tokenized (a small trained byte-level BPE tokenizer, a ChatML template for "messages") with
// their loss masks, packed into sequences and batched, as a training run would.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>

#include "kandil/bpe_train.h"
#include "kandil/chat_template.h"
#include "kandil/tokenizer.h"
#include "kandil/train_data.h"

namespace {
volatile uint64_t g_sink = 0;

struct Setup {
  std::unique_ptr<kandil::Tokenizer> tok;
  std::unique_ptr<kandil::ChatTemplate> chat;
};

const Setup& setup() {
  static const Setup s = [] {
    Setup out;
    kandil::BpeTrainOptions o;
    o.vocab_size = 300;
    kandil::BpeTrainer t(o);
    (void)t.add_text("the user asks and the assistant answers: hello, world! 12 + 30 = 42\n");
    auto m = t.train();
    if (m.ok()) {
      auto tok = kandil::Tokenizer::from_tokenizer_json_text(kandil::bpe_tokenizer_json(*m),
                                                             kandil::bpe_tokenizer_config_json(*m));
      if (tok.ok()) out.tok = std::move(*tok);
    }
    auto c = kandil::ChatTemplate::parse(
        "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] + "
        "'<|im_end|>\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' "
        "}}{% endif %}",
        "chatml");
    if (c.ok()) out.chat = std::make_unique<kandil::ChatTemplate>(std::move(*c));
    return out;
  }();
  return s;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > (64u << 10)) return 0;  // keep one input's work small
  const Setup& s = setup();
  if (!s.tok || !s.chat) return 0;
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto ex = kandil::parse_jsonl(text, "fuzz.jsonl");
  if (!ex.ok()) {
    g_sink = ex.error().message.size();
    return 0;
  }
  std::vector<kandil::TrainExample> tokenized;
  for (const kandil::RawExample& e : *ex) {
    auto t = kandil::tokenize_example(e, *s.tok, s.chat.get());
    if (t.ok()) tokenized.push_back(std::move(*t));
  }
  auto split = kandil::split_validation(std::move(tokenized), 0.25, size);
  kandil::BatchIterator it(kandil::pack_examples(split.train, 16), 2, 7);
  kandil::TrainBatch b;
  uint64_t n = 0;
  while (it.next(b)) n += b.tokens.size();
  g_sink = n + split.valid.size();
  return 0;
}
