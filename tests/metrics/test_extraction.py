"""Feature-extractor plumbing: batching, streaming, validation, InceptionV3."""

import os

import keras
import numpy as np
import pytest

from keras_robust import metrics

NOTOP = "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5"
TOP = "inception_v3_weights_tf_dim_ordering_tf_kernels.h5"


def _images(n, seed=0, shape=(8, 8, 1)):
    return np.random.default_rng(seed).uniform(size=(n, *shape)).astype("float32")


def _encoder(dim=6):
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(4, 3, activation="relu")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(dim)(x))


class _Recorder:
    """A numpy extractor that records the batch sizes it is called with."""

    def __init__(self):
        self.sizes = []

    def __call__(self, images):
        self.sizes.append(images.shape[0])
        return images.reshape(images.shape[0], -1)[:, :5] * 2.0


def test_keras_model_batching_gives_the_same_features_and_statistics():
    encoder = _encoder()
    x = _images(45)
    small = metrics.extract_features(x, encoder, batch_size=7, verbose=0)
    whole = metrics.extract_features(x, encoder, batch_size=1000, verbose=0)
    assert small.shape == (45, 6)
    np.testing.assert_allclose(small, whole, rtol=1e-5, atol=1e-6)
    stats = metrics.feature_statistics(x, encoder, batch_size=7, verbose=0)
    np.testing.assert_allclose(stats.mean, whole.mean(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        stats.covariance, np.cov(whole.astype(np.float64), rowvar=False), atol=1e-6
    )


def test_metrics_on_images_equal_metrics_on_their_features():
    encoder = _encoder()
    real, fake = _images(60, 1), _images(50, 2) ** 2
    f_real = metrics.extract_features(real, encoder, verbose=0)
    f_fake = metrics.extract_features(fake, encoder, verbose=0)
    fid = metrics.frechet_distance(
        real, fake, feature_extractor=encoder, batch_size=16, verbose=0
    )
    assert fid == pytest.approx(metrics.frechet_distance(f_real, f_fake), rel=1e-4)
    kid = metrics.kernel_inception_distance(
        real, fake, 40, 3, feature_extractor=encoder, batch_size=16, verbose=0
    )
    expected = metrics.kernel_inception_distance(f_real, f_fake, 40, 3)
    np.testing.assert_allclose(kid, expected, rtol=1e-4, atol=1e-7)


def test_last_batch_is_padded_to_one_shape_and_trimmed():
    recorder = _Recorder()
    x = _images(10)
    features = metrics.extract_features(x, recorder, batch_size=4, verbose=0)
    assert recorder.sizes == [4, 4, 4]
    np.testing.assert_allclose(features, x.reshape(10, -1)[:, :5] * 2.0)


def test_iterables_of_batches_stream_like_arrays():
    x = _images(23)
    labels = np.arange(23)

    def generator():
        for start in range(0, 23, 5):
            yield x[start : start + 5], labels[start : start + 5]

    expected = metrics.feature_statistics(x, _Recorder(), verbose=0)
    streamed = metrics.feature_statistics(generator(), _Recorder(), verbose=0)
    assert streamed.count == 23
    as_list = metrics.feature_statistics([x[:20], x[20:]], _Recorder(), verbose=0)
    np.testing.assert_allclose(as_list.covariance, expected.covariance, rtol=1e-10)
    np.testing.assert_allclose(streamed.mean, expected.mean, rtol=1e-12)
    np.testing.assert_allclose(streamed.covariance, expected.covariance, rtol=1e-10)
    # Batches of features pass through without any extractor.
    features = np.random.default_rng(0).normal(size=(30, 3))
    chunks = iter([features[:10], features[10:]])
    stats = metrics.feature_statistics(chunks, feature_extractor=None)
    np.testing.assert_allclose(stats.mean, features.mean(0), rtol=1e-12)


def test_tf_data_dataset():
    tf = pytest.importorskip("tensorflow")
    x = _images(20)
    dataset = tf.data.Dataset.from_tensor_slices((x, np.zeros(20))).batch(8)
    streamed = metrics.feature_statistics(dataset, _Recorder(), verbose=0)
    expected = metrics.feature_statistics(x, _Recorder(), verbose=0)
    np.testing.assert_allclose(streamed.mean, expected.mean, rtol=1e-12)
    np.testing.assert_allclose(streamed.covariance, expected.covariance, rtol=1e-10)


def test_a_keras_layer_and_a_backend_tensor_input():
    x = keras.ops.convert_to_tensor(_images(6, shape=(4, 4, 3)))
    pool = keras.layers.GlobalAveragePooling2D()
    features = metrics.extract_features(x, pool, batch_size=4, verbose=0)
    expected = keras.ops.convert_to_numpy(x).mean(axis=(1, 2))
    np.testing.assert_allclose(features, expected, rtol=1e-6)


def test_image_and_extractor_errors_name_the_argument():
    encoder = _encoder()
    x = _images(4)
    with pytest.raises(TypeError, match=r"`real` has dtype uint8.*astype"):
        metrics.frechet_distance((x * 255).astype("uint8"), x, encoder)
    with pytest.raises(ValueError, match=r"`fake` has values in \[.*expects images"):
        metrics.frechet_distance(x, x * 3, encoder)
    with pytest.raises(ValueError, match="`real` contains NaN"):
        metrics.frechet_distance(np.full_like(x, np.nan), x, encoder)
    with pytest.raises(ValueError, match="`real` must be features .* or images"):
        metrics.frechet_distance(x[0], x, encoder)
    with pytest.raises(ValueError, match="`feature_extractor` must return features"):
        metrics.extract_features(x, lambda images: images, verbose=0)
    with pytest.raises(ValueError, match="`feature_extractor` returned NaN"):
        metrics.extract_features(x, lambda images: np.full((4, 2), np.nan), verbose=0)
    with pytest.raises(TypeError, match="`feature_extractor` must be a Keras model"):
        metrics.extract_features(x, feature_extractor=object())
    with pytest.raises(ValueError, match="`batch_size`"):
        metrics.extract_features(x, encoder, batch_size=0)
    with pytest.raises(ValueError, match="`verbose`"):
        metrics.extract_features(x, encoder, verbose=3)
    with pytest.raises(TypeError, match="`data` must be an array"):
        metrics.extract_features(42)
    with pytest.raises(ValueError, match="yielded no samples"):
        metrics.extract_features(iter([]))


def test_inception_preprocess_resizes_replicates_and_rescales():
    grey = np.full((2, 8, 8, 1), 0.5, "float32")
    out = keras.ops.convert_to_numpy(metrics.inception_preprocess(grey))
    assert out.shape == (2, 299, 299, 3)
    np.testing.assert_allclose(out, 0.0, atol=1e-6)
    rgb = _images(1, shape=(299, 299, 3))
    out = keras.ops.convert_to_numpy(metrics.inception_preprocess(rgb))
    np.testing.assert_allclose(out, 2 * rgb - 1, atol=1e-6)
    ramp = np.linspace(0, 1, 16, dtype="float32").reshape(1, 4, 4, 1)
    out = keras.ops.convert_to_numpy(metrics.inception_preprocess(ramp))
    assert out.min() >= -1 - 1e-6 and out.max() <= 1 + 1e-6
    np.testing.assert_allclose(out[..., 0], out[..., 2])
    with pytest.raises(ValueError, match="1 \\(grey\\) or 3 \\(RGB\\) channels"):
        metrics.inception_preprocess(np.zeros((1, 8, 8, 2), "float32"))


def test_missing_local_weights_file_raises_a_clear_error():
    assert issubclass(metrics.WeightsUnavailableError, RuntimeError)
    with pytest.raises(metrics.WeightsUnavailableError) as info:
        metrics.InceptionV3Extractor(weights="/no/such/dir/inception.h5")
    message = str(info.value)
    assert "does not exist" in message and NOTOP in message
    assert "~/.keras/models" in message and "feature_extractor" in message
    assert "never falls back to random weights" in message


@pytest.mark.parametrize(("output", "fname"), [("features", NOTOP), ("logits", TOP)])
def test_offline_download_failure_raises_a_clear_error(monkeypatch, output, fname):
    # Simulate an offline machine: no network is touched.
    calls = []

    def offline_get_file(name, origin, **kwargs):
        calls.append((name, origin, kwargs))
        raise OSError("URL fetch failure: Name or service not known")

    monkeypatch.setattr(keras.utils, "get_file", offline_get_file)
    with pytest.raises(metrics.WeightsUnavailableError) as info:
        metrics.InceptionV3Extractor(output=output)
    message = str(info.value)
    assert "download failed" in message and "Name or service not known" in message
    assert os.path.join("models", fname) in message
    assert 'weights="/path/to/' + fname in message
    assert calls[0][0] == fname and calls[0][2]["cache_subdir"] == "models"


def test_default_extractor_is_built_only_for_images(monkeypatch):
    def offline_get_file(*args, **kwargs):
        raise OSError("offline")

    monkeypatch.setattr(keras.utils, "get_file", offline_get_file)
    features = np.random.default_rng(0).normal(size=(20, 4))
    assert metrics.frechet_distance(features, features) < 1e-9
    with pytest.raises(metrics.WeightsUnavailableError, match="feature_extractor"):
        metrics.frechet_distance(_images(4), _images(4, 1), verbose=0)
    with pytest.raises(metrics.WeightsUnavailableError, match="classifier"):
        metrics.inception_score(_images(4), splits=2, verbose=0)


def test_unloadable_weights_file_raises_a_clear_error(monkeypatch, tmp_path):
    built = {}

    def tiny_inception(**kwargs):  # Stand-in for the 22M-parameter network.
        built.update(kwargs)
        inputs = keras.Input(kwargs["input_shape"])
        x = keras.layers.GlobalAveragePooling2D()(inputs)
        return keras.Model(inputs, keras.layers.Dense(3)(x))

    monkeypatch.setattr(keras.applications, "InceptionV3", tiny_inception)
    path = tmp_path / "corrupt.h5"
    path.write_bytes(b"not an hdf5 file")
    with pytest.raises(metrics.WeightsUnavailableError, match="loading .*corrupt.h5"):
        metrics.InceptionV3Extractor(weights=str(path))
    assert built["weights"] is None and built["include_top"] is False
    assert built["pooling"] == "avg" and built["input_shape"] == (299, 299, 3)
    with pytest.raises(ValueError, match="`output` must be 'features' or 'logits'"):
        metrics.InceptionV3Extractor(output="pool")


@pytest.mark.slow
def test_random_weights_build_the_real_network_with_a_warning():
    with pytest.warns(UserWarning, match="random, untrained weights"):
        extractor = metrics.InceptionV3Extractor(weights=None)
    assert extractor.output_dim == 2048
    features = metrics.extract_features(_images(3), extractor, verbose=0)
    assert features.shape == (3, 2048) and np.all(np.isfinite(features))
