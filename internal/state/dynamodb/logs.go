package dynamodb

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// Trimming the logs (see Retention in the package doc). These work on any
// table of the store with a client and nothing else of it.

// dueForTrim reports whether the append counter attr, as an update just
// left it, has reached a multiple of every. Exactly one of several
// concurrent appends sees each multiple, so trims do not pile up, and
// each costs one key-only query of about keep+every keys.
func dueForTrim(updated map[string]types.AttributeValue, attr string, every int) bool {
	n, ok := updated[attr].(*types.AttributeValueMemberN)
	if !ok {
		return false
	}
	count, err := strconv.ParseInt(n.Value, 10, 64)
	return err == nil && count > 0 && count%int64(every) == 0
}

// trim deletes all but the newest keep items of connection name from table,
// newest by range key.
func trim(ctx context.Context, client *dynamodb.Client, table, rangeKey, name string, keep int) error {
	keys, err := queryKeys(ctx, client, &dynamodb.QueryInput{
		TableName:                 &table,
		KeyConditionExpression:    aws.String("#id = :id"),
		ExpressionAttributeNames:  map[string]string{"#id": attrListID, "#key": rangeKey},
		ExpressionAttributeValues: map[string]types.AttributeValue{":id": str(name)},
		ProjectionExpression:      aws.String("#id, #key"),
		ScanIndexForward:          aws.Bool(false),
	})
	if err != nil || len(keys) <= keep {
		return err
	}
	return deleteKeys(ctx, client, table, keys[keep:])
}

// queryKeys returns every item a query finds (a key-only projection, as
// its callers ask).
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

// deleteKeys deletes items in batches of 25 (BatchWriteItem's limit),
// resending what DynamoDB leaves unprocessed under load, with backoff.
func deleteKeys(ctx context.Context, client *dynamodb.Client, table string, keys []map[string]types.AttributeValue) error {
	for len(keys) > 0 {
		n := min(len(keys), 25)
		var batch []types.WriteRequest
		for _, k := range keys[:n] {
			batch = append(batch, types.WriteRequest{DeleteRequest: &types.DeleteRequest{Key: k}})
		}
		keys = keys[n:]
		for attempt := 0; len(batch) > 0; attempt++ {
			if attempt == 8 {
				return fmt.Errorf("delete from %q: %d items still unprocessed after %d attempts", table, len(batch), attempt)
			}
			if attempt > 0 {
				select {
				case <-time.After(time.Duration(50<<attempt) * time.Millisecond):
				case <-ctx.Done():
					return ctx.Err()
				}
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
