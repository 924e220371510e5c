"""The T5 caption encoder loads through the real path (a saved directory) and trains with the model."""
import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers, processors
from transformers import PreTrainedTokenizerFast, T5Config, T5EncoderModel

from model.config import get_config
from model.flow import FlowMatching
from model.mmdit import MMDiT
from model.omni import AudioGenOmni
from model.synthetic import synthetic_conditions
from model.text_encoder import T5TextEncoder, TextEncoderConfig

WORDS = ["a", "dog", "barks", "loudly", "while", "rain", "falls", "on", "the", "roof", "and", "a", "man", "sings", "softly"]
TINY_T5_WIDTH = 32


@pytest.fixture(scope="module")
def tiny_t5_dir(tmp_path_factory):
    """A random-weight T5 encoder and a word-level tokenizer, saved as a hub checkpoint would be."""
    path = tmp_path_factory.mktemp("tiny_t5")
    vocab = {"<pad>": 0, "</s>": 1, "<unk>": 2, **{w: i + 3 for i, w in enumerate(dict.fromkeys(WORDS))}}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>"
    ).save_pretrained(path)
    torch.manual_seed(0)
    config = T5Config(
        vocab_size=len(vocab), d_model=TINY_T5_WIDTH, d_kv=8, d_ff=64, num_layers=2, num_heads=4,
        relative_attention_num_buckets=8, relative_attention_max_distance=16, decoder_start_token_id=0,
    )
    T5EncoderModel(config).save_pretrained(path)
    return path


def test_loads_from_local_directory_and_encodes(tiny_t5_dir):
    enc = T5TextEncoder(TextEncoderConfig(name_or_path=str(tiny_t5_dir), local_files_only=True))
    hidden, mask, present = enc(["a dog barks", None, "rain falls on the roof"])
    assert hidden.shape[0] == 3 and hidden.shape[2] == TINY_T5_WIDTH == enc.dim
    assert mask.sum(1).tolist() == [4, 1, 6]  # words + </s>
    assert present.tolist() == [True, False, True]
    assert all(p.requires_grad for p in enc.parameters())
    assert enc.encoder.training


def test_refuses_a_directory_that_is_not_a_model(tmp_path):
    with pytest.raises(FileNotFoundError, match="no config.json"):
        T5TextEncoder(TextEncoderConfig(name_or_path=str(tmp_path), local_files_only=True))


def test_config_errors_name_the_field():
    with pytest.raises(ValueError, match="max_length"):
        TextEncoderConfig(max_length=0)


def test_one_backward_reaches_every_parameter_of_every_stream(tiny_t5_dir):
    torch.manual_seed(0)
    cfg = get_config("tiny", text_dim=TINY_T5_WIDTH)
    enc = T5TextEncoder(TextEncoderConfig(name_or_path=str(tiny_t5_dir), local_files_only=True))
    model = AudioGenOmni(MMDiT(cfg), enc)
    # adaLN-zero blocks pass no gradient upstream at step 0; give them weights as after training
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.network.parameters():
            if bool((p == 0).all()):
                p.copy_(torch.randn(p.shape, generator=g) * 0.05)
    # some samples lack each modality, so the empty tokens take part too
    cond = synthetic_conditions(
        cfg, [1.0, 0.7, 0.5, 0.9], generator=g,
        has_video=[True, False, True, True], has_voice=[True, True, False, True],
    )
    cond = model.with_captions(cond, ["a dog barks", "a man sings softly", None, "rain falls"])
    x1 = torch.randn(*cond.latent_mask.shape, cfg.latent_dim, generator=g) * cond.latent_mask[..., None]
    loss = FlowMatching().loss(model, x1, cond, generator=g, dropout=False)
    loss.backward()
    names = [n for n, _ in model.named_parameters()]
    assert any(n.startswith("text_encoder.") for n in names)
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing, missing
    zero = [n for n, p in model.named_parameters() if not bool(p.grad.abs().sum() > 0)]
    assert not zero, zero
    # the T5 embedding rows of words used get gradient, i.e. the caption encoder trains
    assert model.text_encoder.encoder.shared.weight.grad.abs().sum() > 0


def test_text_width_mismatch_is_refused(tiny_t5_dir):
    enc = T5TextEncoder(TextEncoderConfig(name_or_path=str(tiny_t5_dir), local_files_only=True))
    with pytest.raises(ValueError, match="text_dim"):
        AudioGenOmni(MMDiT(get_config("tiny", text_dim=48)), enc)
