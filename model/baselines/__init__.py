"""DLRM-family baselines (paper Appendix E): ranking models over hand-crafted impression features
and a two-tower retrieval model.

Ranking models take :class:`~model.inputs.ImpressionFeatures` and return [N, num_tasks] logits:
``dlrm`` (dot interaction), ``dcnv2`` (cross network), ``dhen`` (hierarchical ensemble), ``mmoe``
(multi-gate experts), ``din`` (target attention over the history). Their shared parts are
``embedding`` (the sparse front end and history pooling), ``mlp`` and the multi-task tops in
``mmoe``. ``two_tower`` is a drop-in for :class:`~model.recommender.SequentialRetrievalModel`.
Every model implements ``forward_flops(workload)`` under the conventions of :mod:`model.flops`.
"""
