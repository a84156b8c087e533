"""The printed schema is committed, and it keeps every name and nullability of the API contract."""

from __future__ import annotations

from pathlib import Path

import pytest
from graphql import (
    GraphQLEnumType,
    GraphQLInputObjectType,
    GraphQLInterfaceType,
    GraphQLNamedType,
    GraphQLObjectType,
    GraphQLSchema,
    Undefined,
    ast_from_value,
    print_ast,
)
from graphql import build_schema as build_sdl_schema
from strawberry.printer import print_schema

from modelql.graph.schema import build_schema

SCHEMA_FILE = Path(__file__).resolve().parents[2] / "schema.graphql"

# The "Schema (core)" block of the API contract (API.md), verbatim.
CONTRACT_CORE_SDL = """
scalar DateTime   # ISO-8601 with timezone, UTC
scalar JSON

interface Node { id: ID! }          # opaque global ids; Query.node resolves any of them

enum ModelTask { CLASSIFICATION REGRESSION }
enum DataSplit { TRAIN VALIDATION TEST }
enum FeatureType { NUMBER INTEGER BOOLEAN CATEGORY TEXT }

type Query {
  node(id: ID!): Node
  models(first: Int = 20, after: String, filter: ModelFilter): ModelConnection!
  model(name: String!): Model                     # null when unknown
  modelVersion(model: String!, version: Int, alias: String): ModelVersion
  predictions(first: Int = 50, after: String, filter: PredictionFilter): PredictionConnection!
  prediction(id: ID!): Prediction
  predictionStats(filter: PredictionFilter): PredictionStats!
}

input ModelFilter { task: ModelTask, tag: String, search: String }

type Model implements Node {
  id: ID!
  name: String!                     # unique slug, e.g. "iris-classifier"
  description: String
  task: ModelTask!
  tags: [String!]!
  createdAt: DateTime!
  updatedAt: DateTime!
  versions(first: Int = 20, after: String): ModelVersionConnection!   # newest first
  version(number: Int, alias: String): ModelVersion   # neither given: the default version
  defaultVersion: ModelVersion      # alias "production" if set, else the newest version
  aliases: [ModelAlias!]!
  predictions(first: Int = 50, after: String, filter: PredictionFilter): PredictionConnection!
}

type ModelAlias { alias: String!  version: ModelVersion! }

type ModelVersion implements Node {
  id: ID!
  model: Model!
  number: Int!                      # 1, 2, 3 ... within its model
  aliases: [String!]!
  description: String
  algorithm: String!                # e.g. "sklearn.linear_model.LogisticRegression"
  framework: String!                # "scikit-learn"
  frameworkVersion: String!
  artifactSha256: String!
  createdAt: DateTime!
  trainedAt: DateTime
  inputSchema: [FeatureSpec!]!      # the model's signature, in model order
  labels: [String!]                 # classes for classification, null for regression
  dataset: DatasetInfo
  trainingArguments: [TrainingArgument!]!
  trainingArgument(name: String!): TrainingArgument     # null when unknown
  performance(split: DataSplit, slice: String): [PerformanceSlice!]!
  metric(name: String!, split: DataSplit = TEST, slice: String = "overall"): Float
  predictions(first: Int = 50, after: String, filter: PredictionFilter): PredictionConnection!
}

type FeatureSpec {
  name: String!
  type: FeatureType!
  required: Boolean!
  description: String
  minimum: Float                    # seen in training data (numeric features)
  maximum: Float
  allowedValues: [String!]          # CATEGORY features
}
type DatasetInfo { name: String!  source: String  numTrainSamples: Int  numTestSamples: Int }
type TrainingArgument { name: String!  value: JSON }
type PerformanceSlice {
  split: DataSplit!
  slice: String!                    # "overall", "class:<label>", or a named data slice
  numSamples: Int!
  metrics: [Metric!]!
}
type Metric { name: String!  value: Float! }

type Prediction implements Node {
  id: ID!
  modelVersion: ModelVersion!
  inputs: JSON!                     # exactly the features that were scored
  label: String                     # classification
  value: Float                      # regression
  probabilities: [ClassProbability!]   # classification models with predict_proba
  confidence: Float                 # the highest probability
  latencyMs: Float!                 # inference time for this prediction
  createdAt: DateTime!
  requestId: String!
  caller: String                    # identity of the API key that asked, null when auth is off
  idempotencyKey: String
}
type ClassProbability { label: String!  probability: Float! }

input PredictionFilter {
  model: String
  version: Int
  label: String
  caller: String
  requestId: String
  createdAfter: DateTime            # inclusive
  createdBefore: DateTime           # exclusive
  minConfidence: Float
  maxConfidence: Float
}

type PredictionStats {
  count: Int!
  labelCounts: [LabelCount!]!       # classification: one row per label, most frequent first
  meanLatencyMs: Float
  p95LatencyMs: Float
  meanValue: Float                  # regression
  firstAt: DateTime
  lastAt: DateTime
}
type LabelCount { label: String!  count: Int! }

type Mutation {
  createPrediction(input: CreatePredictionInput!): CreatePredictionPayload!
  createPredictions(input: CreatePredictionsInput!): CreatePredictionsPayload!
}

input CreatePredictionInput {
  model: String!
  version: Int                      # neither version nor alias: the model's default version
  alias: String
  features: JSON!                   # object: feature name -> value
  idempotencyKey: String
}
type CreatePredictionPayload { prediction: Prediction  userErrors: [UserError!]! }

input CreatePredictionsInput {
  model: String!
  version: Int
  alias: String
  instances: [JSON!]!               # each an object like `features` above
  idempotencyKey: String
}
type CreatePredictionsPayload { predictions: [Prediction!]!  userErrors: [UserError!]! }

type UserError {
  field: [String!]!                 # path into the input, e.g. ["instances", "3", "petal_length"]
  code: UserErrorCode!
  message: String!
}
enum UserErrorCode {
  MODEL_NOT_FOUND
  VERSION_NOT_FOUND
  INVALID_FEATURES
  BATCH_TOO_LARGE
  IDEMPOTENCY_CONFLICT
}
"""

# "Audit and release safety" of the contract's part 2 (API.md), with its additions to core types
# written as extensions.
CONTRACT_RELEASE_SAFETY_SDL = """
extend type Model {
  versionAt(alias: String!, at: DateTime!): ModelVersion
  trafficSplit: [TrafficShare!]!
}
extend type ModelVersion { signatureChanges(from: Int!): [SignatureChange!]! }
type TrafficShare { version: ModelVersion!  weight: Float! }
type SignatureChange {
  feature: String!
  kind: SignatureChangeKind!
  before: FeatureSpec
  after: FeatureSpec
}
enum SignatureChangeKind { ADDED REMOVED RETYPED RANGE_CHANGED CATEGORIES_CHANGED REQUIRED_CHANGED }

extend type Query {
  compareVersions(
    model: String!
    candidate: VersionSelector!
    baseline: VersionSelector
    filter: PredictionFilter
    sample: Int = 1000
  ): VersionComparison!
}
input VersionSelector { version: Int  alias: String }
type VersionComparison {
  candidate: ModelVersion!
  baseline: ModelVersion
  compared: Int!
  skipped: Int!
  agreement: Float
  labelChanges: [LabelChange!]!
  meanAbsoluteDifference: Float
  baselineMetrics: [Metric!]!
  candidateMetrics: [Metric!]!
  examples(first: Int = 10): [PredictionDiff!]!
}
type LabelChange { from: String!  to: String!  count: Int! }
type PredictionDiff { prediction: Prediction!  candidateLabel: String  candidateValue: Float  candidateConfidence: Float }

extend type Mutation {
  setAlias(input: SetAliasInput!): SetAliasPayload!
  setTrafficSplit(input: SetTrafficSplitInput!): SetTrafficSplitPayload!
}
input SetAliasInput { model: String!  alias: String!  version: Int! }
type SetAliasPayload { model: Model  userErrors: [UserError!]! }
input SetTrafficSplitInput { model: String!  shares: [TrafficShareInput!]! }
input TrafficShareInput { version: Int!  weight: Float! }
type SetTrafficSplitPayload { model: Model  userErrors: [UserError!]! }
extend input CreatePredictionInput { routingKey: String }
extend input CreatePredictionsInput { routingKey: String }
extend type Prediction { routedBy: RoutingReason! }
enum RoutingReason { VERSION ALIAS DEFAULT SPLIT }
"""

# The connections the contract describes in prose (Relay: edges { cursor node },
# pageInfo { hasNextPage hasPreviousPage startCursor endCursor }, plus nodes), with the
# nullability of the Relay spec and Shopify's public API, which the contract defers to.
CONTRACT_CONNECTIONS_SDL = """
type PageInfo { hasNextPage: Boolean!  hasPreviousPage: Boolean!  startCursor: String  endCursor: String }
type ModelConnection { edges: [ModelEdge!]!  pageInfo: PageInfo!  nodes: [Model!]! }
type ModelEdge { cursor: String!  node: Model! }
type ModelVersionConnection { edges: [ModelVersionEdge!]!  pageInfo: PageInfo!  nodes: [ModelVersion!]! }
type ModelVersionEdge { cursor: String!  node: ModelVersion! }
type PredictionConnection { edges: [PredictionEdge!]!  pageInfo: PageInfo!  nodes: [Prediction!]! }
type PredictionEdge { cursor: String!  node: Prediction! }
"""

# Part 2 of the contract: "Ground truth", "Live performance", "Drift" and "Grouped statistics",
# as extensions of the core (the `since`/`until` arguments of performance and metric are
# checked apart: an extension cannot add arguments to a field).
CONTRACT_QUALITY_SDL = """
extend type Mutation {
  recordOutcomes(input: RecordOutcomesInput!): RecordOutcomesPayload!
}
input RecordOutcomesInput { outcomes: [OutcomeInput!]! }
input OutcomeInput {
  predictionId: ID
  requestId: String
  batchIndex: Int
  label: String
  value: Float
  observedAt: DateTime
}
type RecordOutcomesPayload { outcomes: [Outcome!]!  userErrors: [UserError!]! }
type Outcome {
  label: String
  value: Float
  observedAt: DateTime!
  recordedAt: DateTime!
  caller: String
}
extend type Prediction {
  outcome: Outcome
  outcomeHistory: [Outcome!]!
  correct: Boolean
  error: Float
}
extend input PredictionFilter { hasOutcome: Boolean  correct: Boolean }
extend enum UserErrorCode { PREDICTION_NOT_FOUND  INVALID_OUTCOME  MODEL_OUTPUT_INVALID }
extend enum DataSplit { LIVE }

extend type ModelVersion { inputDrift(since: DateTime, until: DateTime): DriftReport! }
type DriftReport {
  referenceAvailable: Boolean!
  sampleSize: Int!
  features: [FeatureDrift!]!
  prediction: FeatureDrift
}
type FeatureDrift {
  feature: String!
  method: String!
  score: Float
  drifted: Boolean
  outOfRangeRate: Float
  bins: [DriftBin!]!
}
type DriftBin { label: String!  reference: Float!  live: Float! }

extend type PredictionStats {
  meanConfidence: Float
  labelled: Int!
  groups(by: [StatsDimension!]!, interval: Interval = DAY, first: Int = 100): [PredictionGroup!]!
}
enum StatsDimension { MODEL VERSION LABEL CALLER TIME }
enum Interval { MINUTE HOUR DAY WEEK }
type PredictionGroup {
  model: String  version: Int  label: String  caller: String  bucket: DateTime
  count: Int!
  meanLatencyMs: Float
  p95LatencyMs: Float
  meanConfidence: Float
  meanValue: Float
  labelled: Int!
  accuracy: Float
}
"""

# Part 2 of the contract, "Live feed (subscriptions)", verbatim.
CONTRACT_LIVE_FEED_SDL = """
type Subscription {
  predictionsCreated(filter: PredictionFilter): [Prediction!]!   # scope audit; one message per commit
  catalogueEvents(model: String): CatalogueEvent!                # scope read
}
type CatalogueEvent {
  kind: CatalogueEventKind!
  model: Model!
  version: ModelVersion
  alias: String
  at: DateTime!
}
enum CatalogueEventKind { VERSION_REGISTERED ALIAS_MOVED }
"""

CONTRACT = build_sdl_schema(
    CONTRACT_CORE_SDL
    + CONTRACT_CONNECTIONS_SDL
    + CONTRACT_RELEASE_SAFETY_SDL
    + CONTRACT_QUALITY_SDL
    + CONTRACT_LIVE_FEED_SDL
)
CONTRACT_TYPES = sorted(
    name
    for name, named in CONTRACT.type_map.items()
    if not name.startswith("__")
    and isinstance(
        named, GraphQLObjectType | GraphQLInputObjectType | GraphQLEnumType | GraphQLInterfaceType
    )
)


@pytest.fixture(scope="module")
def ours() -> GraphQLSchema:
    return build_schema()._schema


def test_schema_file_matches_the_code():
    printed = print_schema(build_schema()) + "\n"
    committed = SCHEMA_FILE.read_text()
    assert committed == printed, (
        "schema.graphql is out of date with the code; run `modelql export-schema` and commit it."
    )


def _kind(named: GraphQLNamedType) -> str:
    for kind in (GraphQLObjectType, GraphQLInterfaceType, GraphQLInputObjectType, GraphQLEnumType):
        if isinstance(named, kind):
            return kind.__name__
    return type(named).__name__


def _default(argument: object) -> str | None:
    """An argument's default as SDL text (e.g. `20`, `TEST`, `"overall"`), None when it has none."""
    default = getattr(argument, "default", None)
    if default is not None and default.literal is not Undefined:
        return print_ast(default.literal)
    value = getattr(argument, "default_value", Undefined)
    if value is Undefined:
        return None
    return print_ast(ast_from_value(value, argument.type))  # type: ignore[attr-defined]


def _differences(name: str, ours: GraphQLSchema) -> list[str]:
    """Every way our type named `name` falls short of the contract's."""
    wanted = CONTRACT.type_map[name]
    have = ours.type_map.get(name)
    if have is None:
        return [f"type {name} is missing"]
    if _kind(have) != _kind(wanted):
        return [f"{name} is a {_kind(have)}, the contract says {_kind(wanted)}"]
    problems: list[str] = []
    if isinstance(wanted, GraphQLEnumType):
        assert isinstance(have, GraphQLEnumType)
        problems += [
            f"{name}.{value} is missing" for value in wanted.values if value not in have.values
        ]
        return problems
    if isinstance(wanted, GraphQLObjectType | GraphQLInterfaceType):
        interfaces = {interface.name for interface in have.interfaces}  # type: ignore[union-attr]
        problems += [
            f"{name} does not implement {interface.name}"
            for interface in wanted.interfaces
            if interface.name not in interfaces
        ]
    for field_name, field in wanted.fields.items():  # type: ignore[union-attr]
        mine = have.fields.get(field_name)  # type: ignore[union-attr]
        if mine is None:
            problems.append(f"{name}.{field_name} is missing")
            continue
        if str(mine.type) != str(field.type):
            problems.append(f"{name}.{field_name}: {mine.type}, the contract says {field.type}")
        for argument_name, argument in getattr(field, "args", {}).items():
            own = mine.args.get(argument_name)
            where = f"{name}.{field_name}({argument_name})"
            if own is None:
                problems.append(f"{where} is missing")
                continue
            if str(own.type) != str(argument.type):
                problems.append(f"{where}: {own.type}, the contract says {argument.type}")
            wanted_default = _default(argument)
            if wanted_default is not None and _default(own) != wanted_default:
                problems.append(f"{where} defaults to {_default(own)}, not {wanted_default}")
    return problems


def test_the_contract_sdl_is_complete():
    assert len(CONTRACT_TYPES) >= 30
    assert {"Query", "Mutation", "Node", "ModelTask", "PredictionFilter", "PageInfo"} <= set(
        CONTRACT_TYPES
    )
    assert "versionAt" in CONTRACT.type_map["Model"].fields  # the extensions were applied
    assert "routingKey" in CONTRACT.type_map["CreatePredictionsInput"].fields


@pytest.mark.parametrize("type_name", CONTRACT_TYPES)
def test_every_contract_type_is_kept_with_its_nullability(type_name: str, ours: GraphQLSchema):
    problems = _differences(type_name, ours)
    assert not problems, "Schema differs from the API contract:\n" + "\n".join(problems)


def test_contract_scalars_exist(ours: GraphQLSchema):
    for scalar in ("DateTime", "JSON", "ID", "String", "Int", "Float", "Boolean"):
        assert scalar in ours.type_map
    assert ours.query_type is not None and ours.query_type.name == "Query"
    assert ours.mutation_type is not None and ours.mutation_type.name == "Mutation"
    assert ours.subscription_type is not None and ours.subscription_type.name == "Subscription"


@pytest.mark.parametrize("field", ["performance", "metric"])
def test_live_windows_are_arguments_of_performance_and_metric(field: str, ours: GraphQLSchema):
    version = ours.type_map["ModelVersion"]
    assert isinstance(version, GraphQLObjectType)
    arguments = version.fields[field].args
    assert {name: str(arguments[name].type) for name in ("since", "until")} == {
        "since": "DateTime",
        "until": "DateTime",
    }
