"""fashionbench.layers: the semantic correlation matrix (ML-GCN Eq. 7-8 on cosine
similarities, worked by hand), attention masking, position encoding, the per-class
classifier, and shapes/gradients of the blocks chained on a tiny backbone."""
from __future__ import annotations

import math

import numpy as np
import pytest
import timm
import torch
from sklearn.metrics.pairwise import cosine_similarity

from fashionbench.layers import (
    CrossAttentionLayer,
    GroupWiseLinear,
    SelfAttentionLayer,
    SemanticDecoupling,
    attention_bias,
    binarize_correlation,
    cosine_similarity_matrix,
    reweight_correlation,
    semantic_correlation,
    sine_position_encoding,
)

# Four labels: cos(e0, e1) = cos(e1, e2) = 1/sqrt(2) ~ 0.707, every other pair 0 (e3 is
# orthogonal to all, and its length 2 must not matter).
HAND_EMBEDDINGS = torch.tensor([[1.0, 0.0, 0.0], [1.0, 1.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 2.0]])


# ----------------------------------------------------------------------------- correlation
def test_cosine_similarity_matches_sklearn():
    emb = torch.randn(7, 5, generator=torch.Generator().manual_seed(0))
    expected = cosine_similarity(emb.numpy())
    np.testing.assert_allclose(cosine_similarity_matrix(emb).numpy(), expected, rtol=1e-5, atol=1e-6)


def test_correlation_by_hand_tau_half():
    # tau = 0.5 keeps the edges 0-1 and 1-2. Row 0: one neighbour gets p = 0.2, self 1 - p.
    # Row 1: two neighbours share p (0.1 each). Row 3 has no neighbour: it keeps 1 on itself.
    expected = torch.tensor(
        [[0.8, 0.2, 0.0, 0.0], [0.1, 0.8, 0.1, 0.0], [0.0, 0.2, 0.8, 0.0], [0.0, 0.0, 0.0, 1.0]]
    )
    got = semantic_correlation(HAND_EMBEDDINGS, tau=0.5, p=0.2)
    torch.testing.assert_close(got, expected)


def test_correlation_by_hand_threshold_is_inclusive():
    # tau = 0: the zero-cosine pairs are kept too (S_ij >= tau), so each row has 3
    # neighbours sharing p = 0.3 (0.1 each) and keeps 0.7 for itself.
    expected = torch.full((4, 4), 0.1) + torch.eye(4) * (0.7 - 0.1)
    torch.testing.assert_close(semantic_correlation(HAND_EMBEDDINGS, tau=0.0, p=0.3), expected)


def test_binarize_and_reweight_steps():
    adjacency = binarize_correlation(cosine_similarity_matrix(HAND_EMBEDDINGS), tau=0.5)
    torch.testing.assert_close(
        adjacency, torch.tensor([[0.0, 1, 0, 0], [1, 0, 1, 0], [0, 1, 0, 0], [0, 0, 0, 0]])
    )
    reweighted = reweight_correlation(adjacency, p=0.0)  # p = 0: identity only
    torch.testing.assert_close(reweighted, torch.eye(4))
    torch.testing.assert_close(reweight_correlation(adjacency, 0.4).sum(1), torch.ones(4))


def test_correlation_rejects_bad_parameters():
    with pytest.raises(ValueError, match="p must be"):
        semantic_correlation(HAND_EMBEDDINGS, tau=0.5, p=1.0)
    with pytest.raises(ValueError, match="tau"):
        semantic_correlation(HAND_EMBEDDINGS, tau=1.5, p=0.2)


def test_attention_bias_is_log_with_minus_inf_for_masked_pairs():
    corr = semantic_correlation(HAND_EMBEDDINGS, tau=0.5, p=0.2)
    bias = attention_bias(corr)
    assert bias[0, 2] == -math.inf and bias[3, 0] == -math.inf
    assert bias[0, 1].item() == pytest.approx(math.log(0.2))
    assert bias[3, 3].item() == 0.0
    with pytest.raises(ValueError, match="itself"):
        attention_bias(torch.zeros(2, 2))


# ------------------------------------------------------------------------------- masking
def _eval_layer(cls, dim=8, heads=2):
    torch.manual_seed(0)
    return cls(dim, heads, ffn_dim=16, dropout=0.0).eval()


def test_masked_pairs_get_exactly_zero_weight_and_allowed_pairs_are_reweighted():
    layer = _eval_layer(SelfAttentionLayer)
    corr = semantic_correlation(HAND_EMBEDDINGS, tau=0.5, p=0.2)
    x = torch.randn(3, 4, 8, generator=torch.Generator().manual_seed(1))
    _, free = layer(x, None, need_weights=True)  # [B, heads, 4, 4]
    _, masked = layer(x, attention_bias(corr), need_weights=True)
    assert masked.shape == (3, 2, 4, 4)
    assert torch.all(masked[:, :, corr == 0] == 0)
    # softmax(s + log A) = A * softmax(s) / sum(A * softmax(s)): the prior re-weights.
    expected = corr * free
    expected = expected / expected.sum(-1, keepdim=True)
    torch.testing.assert_close(masked, expected, rtol=1e-5, atol=1e-6)


def test_output_ignores_a_masked_key():
    layer = _eval_layer(SelfAttentionLayer)
    bias = attention_bias(semantic_correlation(HAND_EMBEDDINGS, tau=0.5, p=0.2))
    x = torch.randn(2, 4, 8, generator=torch.Generator().manual_seed(2))
    x_changed = x.clone()
    x_changed[:, 2] += 5.0  # label 2: a key of labels 1 and 2 only
    out, out_changed = layer(x, bias), layer(x_changed, bias)
    torch.testing.assert_close(out[:, [0, 3]], out_changed[:, [0, 3]])
    assert not torch.allclose(out[:, 1], out_changed[:, 1])
    # without the mask, label 0 does see label 2
    assert not torch.allclose(layer(x)[:, 0], layer(x_changed)[:, 0])


@pytest.mark.parametrize("norm_first", [False, True])
def test_cross_attention_keys_and_values(norm_first):
    torch.manual_seed(0)
    layer = CrossAttentionLayer(8, 2, 16, dropout=0.0, norm_first=norm_first).eval()
    queries = torch.randn(2, 3, 8)
    memory = torch.randn(2, 5, 8)
    out, weights = layer(queries, memory, need_weights=True)
    assert out.shape == (2, 3, 8) and weights.shape == (2, 2, 3, 5)
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 2, 3))
    # attention is a weighted set operation: without positions, shuffling memory changes nothing
    perm = torch.tensor([3, 0, 4, 1, 2])
    torch.testing.assert_close(layer(queries, memory[:, perm]), out, rtol=1e-5, atol=1e-6)
    # positions enter the keys only: with them the order matters
    pos = sine_position_encoding(1, 5, 8)
    assert not torch.allclose(layer(queries, memory, pos), layer(queries, memory[:, perm], pos))


def test_sine_position_encoding_by_hand():
    # H=1, W=2, dim=4: one frequency (temperature^0 = 1); y = 1/1 * 2pi, x = (1/2, 2/2) * 2pi.
    # Channels: [sin y, cos y, sin x, cos x].
    expected = torch.tensor([[0.0, 1.0, 0.0, -1.0], [0.0, 1.0, 0.0, 1.0]])
    torch.testing.assert_close(sine_position_encoding(1, 2, 4), expected, atol=1e-4, rtol=0)
    assert sine_position_encoding(3, 5, 10).shape == (15, 10)


def test_group_wise_linear_is_the_diagonal_of_a_full_linear():
    layer = GroupWiseLinear(5, 7)
    z = torch.randn(3, 5, 7)
    expected = torch.diagonal(z @ layer.weight.T, dim1=1, dim2=2) + layer.bias
    torch.testing.assert_close(layer(z), expected)


def test_semantic_decoupling_picks_the_matching_position():
    dec = SemanticDecoupling(label_dim=3, dim=3)
    with torch.no_grad():  # identity projections, sharp scores
        dec.query.weight.copy_(torch.eye(3) * 50)
        dec.query.bias.zero_()
        dec.key.weight.copy_(torch.eye(3))
        dec.key.bias.zero_()
    features = torch.eye(3)[[2, 0, 1]].unsqueeze(0)  # position n holds one-hot of class (n+2)%3
    out = dec(features, torch.eye(3))
    torch.testing.assert_close(out[0], torch.eye(3), atol=1e-6, rtol=0)


# ---------------------------------------------------------------- blocks on a tiny backbone
@pytest.fixture(scope="module")
def tiny_backbone():
    torch.manual_seed(0)
    return timm.create_model("resnet10t", pretrained=False, num_classes=0, global_pool="")


@pytest.mark.parametrize("num_classes", [1, 3, 20, 80])
def test_blocks_chain_shapes_and_gradients(num_classes, tiny_backbone):
    torch.manual_seed(0)
    backbone = tiny_backbone
    backbone.zero_grad(set_to_none=True)
    dim, heads = 32, 4
    proj = torch.nn.Linear(backbone.num_features, dim)
    label_vectors = torch.randn(num_classes, 12)
    bias = attention_bias(semantic_correlation(label_vectors, tau=0.1, p=0.2))
    dec = SemanticDecoupling(12, dim)
    sga = SelfAttentionLayer(dim, heads, 64)
    saa = CrossAttentionLayer(dim, heads, 64)
    head = GroupWiseLinear(num_classes, dim)

    images = torch.randn(2, 3, 64, 64)
    fmap = backbone.forward_features(images)  # [2, 512, 2, 2]
    tokens = proj(fmap.flatten(2).transpose(1, 2))
    pos = sine_position_encoding(fmap.shape[2], fmap.shape[3], dim)
    z = saa(sga(dec(tokens, label_vectors, pos), bias), tokens, pos)
    logits = head(z)
    assert logits.shape == (2, num_classes)
    logits.sum().backward()
    for module in (backbone, proj, dec, sga, saa, head):
        grads = [p.grad for p in module.parameters() if p.requires_grad]
        assert all(g is not None and torch.isfinite(g).all() for g in grads)
        assert any(g.abs().sum() > 0 for g in grads)
