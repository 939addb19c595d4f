"""One location for the gcp backend: the BigQuery dataset, the staging bucket and the Vertex AI region.

The connection holds one ``location``. BigQuery runs every job there, and Vertex AI runs in
``vertex_region(location)`` (a multi-region is not a Vertex AI region). Two documented rules
then decide where the staging bucket may be:

- Vertex AI reads model artifacts only from a bucket in its own region, so ``UploadModel``
  answers FAILED_PRECONDITION ("The Cloud Storage bucket of gs://... is in location us. It must
  be in the same regional location as the service location us-central1") after the paid
  training job: https://cloud.google.com/vertex-ai/docs/general/import-model ("store your model
  artifacts in a Cloud Storage bucket where the bucket's region matches the regional endpoint
  you're using"), https://cloud.google.com/vertex-ai/docs/general/locations and
  https://github.com/googleapis/python-aiplatform/issues/885.
- ``EXPORT DATA`` writes only to a bucket colocated with the dataset: a regional dataset to a
  bucket in the same region, the EU multi-region to EU or a region inside it, the US
  multi-region to any location:
  https://cloud.google.com/bigquery/docs/exporting-data#data-locations.

So the bucket lives in the Vertex AI region, which the export rule allows for ``US``, ``EU``
and any region. ``location_problems`` is the rule as a pure function; ``read_locations`` asks
BigQuery and Cloud Storage (metadata reads, nothing billed) through the Google provider's hooks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from airflow_ml_provider.exceptions import ContractError

if TYPE_CHECKING:
    from airflow_ml_provider.core.contract.config import PlatformConfig

#: BigQuery's multi-regions are not Vertex AI regions; train in the region their data usually lives next to.
MULTI_REGION_VERTEX = {"us": "us-central1", "eu": "europe-west4"}
# Regions inside the EU multi-region (in EU member states): https://cloud.google.com/storage/docs/locations
_EU_REGIONS = frozenset(
    {"europe-central2", "europe-north1", "europe-north2", "europe-southwest1", "europe-west1", "europe-west3",
     "europe-west4", "europe-west8", "europe-west9", "europe-west10", "europe-west12"}
)  # fmt: skip


def vertex_region(location: str) -> str:
    """The Vertex AI region for the connection's ``location`` (``US`` -> ``us-central1``)."""
    return MULTI_REGION_VERTEX.get(location.lower(), location.lower())


def export_allowed(dataset_location: str, bucket_location: str) -> bool:
    """Whether ``EXPORT DATA`` from a dataset in ``dataset_location`` may write to a bucket in ``bucket_location``."""
    dataset, bucket = dataset_location.lower(), bucket_location.lower()
    if dataset == "us":
        return True
    if dataset == "eu":
        return bucket == "eu" or bucket in _EU_REGIONS
    return dataset == bucket


def bucket_name(uri: str) -> str | None:
    """The bucket of a ``gs://`` URI, else None."""
    if not uri.startswith("gs://"):
        return None
    return uri[len("gs://") :].split("/", 1)[0] or None


@dataclass(frozen=True)
class Locations:
    """Where the connection's resources are, as the services report them."""

    location: str  # the connection's
    dataset: str  # "<project>:<dataset>"
    dataset_location: str | None  # None: the dataset does not exist (yet)
    bucket: str | None  # None: artifacts are not on GCS
    bucket_location: str | None  # None: the bucket does not exist (or no bucket)


def location_problems(found: Locations) -> list[str]:
    """Sentences naming each incompatible location and the fix; empty when they fit together."""
    location, region = found.location, vertex_region(found.location)
    problems = []
    if found.dataset_location is None:
        problems.append(
            f"dataset {found.dataset} does not exist. Create it in the connection's location: "
            f"`bq --location={location} mk --dataset {found.dataset}`."
        )
    elif found.dataset_location.lower() != location.lower():
        problems.append(
            f"dataset {found.dataset} is in {found.dataset_location}, but the connection's location is "
            f"{location}: BigQuery runs the jobs in {location} and would not find the dataset. Set "
            f'"location": "{found.dataset_location}" in the ml_platform connection extras, or recreate the '
            f"dataset in {location}."
        )
    if found.bucket is None:
        return problems
    create = f"`gcloud storage buckets create gs://<name> --location={region}`"
    if found.bucket_location is None:
        problems.append(f"staging bucket gs://{found.bucket} does not exist. Create it: {create}.")
        return problems
    if found.bucket_location.lower() != region:
        problems.append(
            f"staging bucket gs://{found.bucket} is in {found.bucket_location}, but Vertex AI runs in {region} "
            f"(location {location}) and refuses a model whose files are in a bucket outside its region, after "
            f"the training job has run and been billed. Create a bucket in {region} ({create}) and set it as "
            "staging_bucket in the ml_platform connection extras."
        )
    dataset_location = found.dataset_location or location
    if not export_allowed(dataset_location, found.bucket_location):
        problems.append(
            f"BigQuery cannot EXPORT DATA from dataset {found.dataset} in {dataset_location} to bucket "
            f"gs://{found.bucket} in {found.bucket_location}: a regional dataset exports only to a bucket in the "
            f"same region. Keep the dataset, the bucket and Vertex AI in one region, e.g. {region}."
        )
    return problems


def read_locations(config: PlatformConfig) -> Locations:
    """Ask BigQuery and Cloud Storage where the connection's dataset and staging bucket are (nothing is billed)."""
    from airflow.providers.google.cloud.hooks.bigquery import BigQueryHook
    from google.api_core.exceptions import NotFound

    dataset = f"{config.project}:{config.dataset}"
    client = BigQueryHook(
        gcp_conn_id=config.gcp_conn_id, impersonation_chain=config.impersonation_chain, use_legacy_sql=False
    ).get_client(project_id=str(config.project))
    try:
        dataset_location: str | None = client.get_dataset(f"{config.project}.{config.dataset}").location
    except NotFound:
        dataset_location = None
    bucket = bucket_name(config.artifacts_uri)
    return Locations(
        config.location, dataset, dataset_location, bucket, bucket_location(config, bucket) if bucket else None
    )


def bucket_location(config: PlatformConfig, bucket: str) -> str | None:
    """The location Cloud Storage reports for ``bucket`` (e.g. ``US-CENTRAL1``), or None when it does not exist."""
    from airflow.providers.google.cloud.hooks.gcs import GCSHook
    from google.api_core.exceptions import NotFound

    client = GCSHook(gcp_conn_id=config.gcp_conn_id, impersonation_chain=config.impersonation_chain).get_conn()
    try:
        return str(client.get_bucket(bucket).location)
    except NotFound:
        return None


def check_locations(config: PlatformConfig) -> None:
    """Raise a ContractError listing every incompatible location (dataset, staging bucket, Vertex AI region)."""
    problems = location_problems(read_locations(config))
    if problems:
        raise ContractError("the gcp connection's locations do not fit together: " + " ".join(problems))
