"""Testing scaffolding, used by the tests, the ``tiny-model`` and ``fixtures`` verbs and the demo.

* :mod:`.tokenizer_training`: byte-level BPE tokenizers trained offline on a multilingual corpus;
* :mod:`.tiny_model` and :mod:`.tiny_phi3_v`: tiny random models of every supported backbone;
* :mod:`.lexicon` and :mod:`.world`: the one synthetic world (rendered scenes, texts in en/it/es/fr/de and pt,
  a language outside the paper's set added through a language file, `world_languages.json`);
* :mod:`.fixtures`: writers of the released data formats (MMMEB files, parallel corpus, MMEB-train).

Nothing here downloads anything.
"""
