"""
Choosing the regularisation by cross-validation
===============================================

The convex programs are ordinary estimators: fit on training data, predict on new
points. Their one hyper-parameter is the regularisation — ``lam_ratio`` for the
gated-ReLU network (weight decay as a fraction of ``λ_max``), ``mu_ratio`` for the
kernel methods (``μ`` as a fraction of ``||X||₂²``). convexnn's scikit-learn estimators
(``GatedReLUClassifier``, ``NTKClassifier``, ``OptimalKernelClassifier``)
fit into scikit-learn's tools, so a ``GridSearchCV`` chooses it by cross-validation.

Every fit inside the search is a certified optimum: the cross-validation compares
models, never half-trained networks.
"""

# %%
# The data
# --------
# scikit-learn's breast-cancer data: 569 tumours, 30 features, benign or malignant.
import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import convexnn as cn

X, labels = load_breast_cancer(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(X, labels, test_size=0.3,
                                                    random_state=0, stratify=labels)
ratios = np.geomspace(0.5, 0.005, 5)

# %%
# A grid search over each estimator
# ---------------------------------
# Each estimator standardises the features first (a pipeline), and the search tries five
# values of its regularisation with 3-fold cross-validation on the training set.
scores: dict[str, np.ndarray] = {}
test_scores: dict[str, float] = {}
estimators = {
    "gated ReLU": (cn.GatedReLUClassifier(patterns=100, lam_ratio=0.1, bias=True,
                                          random_state=0), "lam_ratio"),
    "NTK": (cn.NTKClassifier(patterns=100, mu_ratio=0.1, bias=True, random_state=0),
            "mu_ratio"),
    "optimal kernel": (cn.OptimalKernelClassifier(patterns=100, mu_ratio=0.1, bias=True,
                                                  random_state=0), "mu_ratio"),
}
for label, (estimator, param) in estimators.items():
    pipe = make_pipeline(StandardScaler(), estimator)
    step = pipe.steps[-1][0]
    search = GridSearchCV(pipe, {f"{step}__{param}": list(ratios)}, cv=3)
    search.fit(X_train, y_train)
    scores[label] = search.cv_results_["mean_test_score"]
    test_scores[label] = search.score(X_test, y_test)
    print(f"{label}: best {param} = {search.best_params_[f'{step}__{param}']:.3g}, "
          f"cross-validated accuracy {search.best_score_:.3f}, "
          f"held-out accuracy {test_scores[label]:.3f}")

# %%
# The picture
# -----------
# Mean cross-validated accuracy against the regularisation ratio; the dotted line is the
# held-out accuracy of the model refitted at the chosen value.
fig, ax = plt.subplots(figsize=(7, 4.2), layout="constrained")
for k, (label, acc) in enumerate(scores.items()):
    ax.semilogx(ratios, acc, "o-", color=f"C{k}", label=f"{label} (cross-validated)")
    ax.axhline(test_scores[label], color=f"C{k}", ls=":", lw=1)
ax.set(xlabel="regularisation ratio (lam_ratio or mu_ratio)", ylabel="accuracy",
       title="choosing the regularisation by 3-fold cross-validation")
ax.invert_xaxis()
ax.legend(fontsize=8, loc="lower left")
plt.show()
