package dynamodb

import (
	"context"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// Many items at once, on any table of the store. DynamoDB may leave part
// of a batch unprocessed under load; it is sent again, with backoff.

// Batch limits of BatchWriteItem and BatchGetItem, and how often a batch's
// leftovers are sent again.
const (
	writeBatch    = 25
	getBatch      = 100
	batchAttempts = 8
)

// backoff waits before the attempt-th sending of a batch's leftovers.
func backoff(ctx context.Context, attempt int) error {
	if attempt == 0 {
		return nil
	}
	select {
	case <-time.After(time.Duration(50<<attempt) * time.Millisecond):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// queryKeys returns every item a query finds (a key-only projection, as
// most of its callers ask).
func queryKeys(ctx context.Context, client *dynamodb.Client, in *dynamodb.QueryInput) ([]map[string]types.AttributeValue, error) {
	var out []map[string]types.AttributeValue
	pages := dynamodb.NewQueryPaginator(client, in)
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return nil, err
		}
		out = append(out, page.Items...)
	}
	return out, nil
}

// deleteKeys deletes items in batches.
func deleteKeys(ctx context.Context, client *dynamodb.Client, table string, keys []map[string]types.AttributeValue) error {
	reqs := make([]types.WriteRequest, len(keys))
	for i, k := range keys {
		reqs[i] = types.WriteRequest{DeleteRequest: &types.DeleteRequest{Key: k}}
	}
	return batchWrite(ctx, client, table, reqs)
}

// batchWrite sends puts and deletes in batches of writeBatch. Each item is
// written or not on its own: a batch is not a transaction.
func batchWrite(ctx context.Context, client *dynamodb.Client, table string, reqs []types.WriteRequest) error {
	for len(reqs) > 0 {
		n := min(len(reqs), writeBatch)
		batch := reqs[:n:n]
		reqs = reqs[n:]
		for attempt := 0; len(batch) > 0; attempt++ {
			if attempt == batchAttempts {
				return fmt.Errorf("write to %q: %d items still unprocessed after %d attempts", table, len(batch), attempt)
			}
			if err := backoff(ctx, attempt); err != nil {
				return err
			}
			out, err := client.BatchWriteItem(ctx, &dynamodb.BatchWriteItemInput{
				RequestItems: map[string][]types.WriteRequest{table: batch},
			})
			if err != nil {
				return err
			}
			batch = out.UnprocessedItems[table]
		}
	}
	return nil
}

// batchGet reads the items of keys, strongly consistent, in batches of
// getBatch; an item that does not exist is simply not in the result.
func batchGet(ctx context.Context, client *dynamodb.Client, table string, keys []map[string]types.AttributeValue) ([]map[string]types.AttributeValue, error) {
	var out []map[string]types.AttributeValue
	consistent := true
	for len(keys) > 0 {
		n := min(len(keys), getBatch)
		batch := keys[:n:n]
		keys = keys[n:]
		for attempt := 0; len(batch) > 0; attempt++ {
			if attempt == batchAttempts {
				return nil, fmt.Errorf("read from %q: %d items still unprocessed after %d attempts", table, len(batch), attempt)
			}
			if err := backoff(ctx, attempt); err != nil {
				return nil, err
			}
			res, err := client.BatchGetItem(ctx, &dynamodb.BatchGetItemInput{
				RequestItems: map[string]types.KeysAndAttributes{table: {Keys: batch, ConsistentRead: &consistent}},
			})
			if err != nil {
				return nil, err
			}
			out = append(out, res.Responses[table]...)
			batch = res.UnprocessedKeys[table].Keys
		}
	}
	return out, nil
}
