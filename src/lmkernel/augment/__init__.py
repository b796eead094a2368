"""Training-data augmentation (``data.augment``): EDA operations with embedding-neighbour synonyms, Chinese
words by jieba, optional back-translation, and a gain guard that keeps augmentation only when it helps.
Kept apart from the robustness evaluation's perturbations on purpose: what a model trains on must not be
what it is tested against."""
