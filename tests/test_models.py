import torch

from cf_core.models import DotProduct, DotProductBias, EmbeddingNN, sigmoid_range


def test_dot_product_shapes_and_value():
    m = DotProduct(5, 7, 3)
    u, i = torch.tensor([0, 4]), torch.tensor([6, 1])
    out = m(u, i)
    assert out.shape == (2,)
    expected = (m.user_factors.weight[u] * m.item_factors.weight[i]).sum(1) + m.global_bias
    assert torch.allclose(out, expected)


def test_bias_model_uses_biases_and_y_range():
    m = DotProductBias(4, 4, 2, y_range=(0.5, 5.5), mean_rating=3.5)
    u, i = torch.arange(4), torch.arange(4)
    # starts at the mean rating, inside the range
    assert torch.allclose(m(u, i), torch.full((4,), 3.5), atol=0.05)
    with torch.no_grad():
        m.item_bias.weight[2] = 10.0
    out = m(u, i)
    assert out.max() < 5.5 and out.min() > 0.5
    assert out[2] > 5.3


def test_sigmoid_range_bounds():
    x = torch.tensor([-1e3, 0.0, 1e3])
    assert sigmoid_range(x, 1, 5).tolist() == [1.0, 3.0, 5.0]


def test_embedding_nn_shapes_dropout_and_range():
    m = EmbeddingNN(10, 20, 6, 4, layers=(16, 8), dropout=(0.5, 0.1), y_range=(1, 5), mean_rating=3)
    out = m(torch.tensor([0, 9, 3]), torch.tensor([19, 0, 5]))
    assert out.shape == (3,)
    assert ((out > 1) & (out < 5)).all()
    assert m.user_factors.weight.shape == (10, 6) and m.item_factors.weight.shape == (20, 4)
    assert [type(x).__name__ for x in m.layers] == ["Linear", "ReLU", "Dropout"] * 2
    assert m.layers[2].p == 0.5


def test_penalty_is_mean_squared_norm_of_used_rows():
    m = DotProductBias(3, 3, 2)
    with torch.no_grad():
        m.user_factors.weight.fill_(1.0)
        m.item_factors.weight.fill_(2.0)
    p = m.penalty(torch.tensor([0, 1]), torch.tensor([2, 2]))
    assert abs(p.item() - (2 * 1 + 2 * 4)) < 1e-6


def test_forward_user_matches_forward_for_existing_user():
    for m in (DotProductBias(3, 5, 4, y_range=(0, 5)), EmbeddingNN(3, 5, 4, 4, y_range=(0, 5))):
        m.eval()
        items = torch.arange(5)
        vec = m.user_factors.weight[1]
        bias = m.user_bias.weight[1, 0] if hasattr(m, "user_bias") else torch.zeros(())
        assert torch.allclose(m.forward_user(vec, bias, items), m(torch.full((5,), 1), items), atol=1e-6)
